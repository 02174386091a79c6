//! The configs shipped with mmanet (this folder), embedded as strings: the one place the rest
//! of the workspace reads them from. The CLI's `--config PATH` reads a config file from disk;
//! a shipped one is also reachable by its file name ([`by_name`]), and the desktop app's
//! presets and the demos embed theirs from here, so no crate reaches into this folder by path.

/// `casia-surf-manifest.toml`.
pub const CASIA_SURF_MANIFEST: &str = include_str!("casia-surf-manifest.toml");
/// `casia-surf.toml`.
pub const CASIA_SURF: &str = include_str!("casia-surf.toml");
/// `cefa-manifest.toml`.
pub const CEFA_MANIFEST: &str = include_str!("cefa-manifest.toml");
/// `cefa.toml`.
pub const CEFA: &str = include_str!("cefa.toml");
/// `cityscapes-manifest.toml`.
pub const CITYSCAPES_MANIFEST: &str = include_str!("cityscapes-manifest.toml");
/// `cityscapes.toml`.
pub const CITYSCAPES: &str = include_str!("cityscapes.toml");
/// `mfeat-ablation.toml`.
pub const MFEAT_ABLATION: &str = include_str!("mfeat-ablation.toml");
/// `mfeat-demo.toml`.
pub const MFEAT_DEMO: &str = include_str!("mfeat-demo.toml");
/// `mfeat-pix-image.toml`.
pub const MFEAT_PIX_IMAGE: &str = include_str!("mfeat-pix-image.toml");
/// `nyuv2-manifest.toml`.
pub const NYUV2_MANIFEST: &str = include_str!("nyuv2-manifest.toml");
/// `nyuv2.toml`.
pub const NYUV2: &str = include_str!("nyuv2.toml");
/// `scenes-ablation.toml`.
pub const SCENES_ABLATION: &str = include_str!("scenes-ablation.toml");
/// `scenes-demo.toml`.
pub const SCENES_DEMO: &str = include_str!("scenes-demo.toml");
/// `synthetic-antispoof.toml`.
pub const SYNTHETIC_ANTISPOOF: &str = include_str!("synthetic-antispoof.toml");

/// Every shipped config: (file name, text).
pub const ALL: &[(&str, &str)] = &[
    ("casia-surf-manifest.toml", CASIA_SURF_MANIFEST),
    ("casia-surf.toml", CASIA_SURF),
    ("cefa-manifest.toml", CEFA_MANIFEST),
    ("cefa.toml", CEFA),
    ("cityscapes-manifest.toml", CITYSCAPES_MANIFEST),
    ("cityscapes.toml", CITYSCAPES),
    ("mfeat-ablation.toml", MFEAT_ABLATION),
    ("mfeat-demo.toml", MFEAT_DEMO),
    ("mfeat-pix-image.toml", MFEAT_PIX_IMAGE),
    ("nyuv2-manifest.toml", NYUV2_MANIFEST),
    ("nyuv2.toml", NYUV2),
    ("scenes-ablation.toml", SCENES_ABLATION),
    ("scenes-demo.toml", SCENES_DEMO),
    ("synthetic-antispoof.toml", SYNTHETIC_ANTISPOOF),
];

/// A shipped config's text by its file name (`mfeat-demo.toml`).
pub fn by_name(file_name: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(name, _)| *name == file_name)
        .map(|(_, text)| *text)
}
