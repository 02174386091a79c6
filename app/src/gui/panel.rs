//! What the panels share, as egui's demo app hands each demo what it needs: each panel is a
//! type that owns its own state and implements [`Panel`]; the app keeps what is truly shared —
//! the settings, the session (data and run), the texture cache, the workers — and hands it over
//! as a [`PanelContext`] every frame. A panel asks for what reaches beyond it (load the data,
//! start or stop a run, …) with an [`Action`], which the app carries out once the panel is
//! drawn.

use super::draw::TextureCache;
use super::session::{RunStatus, Session};
use super::settings::Settings;
use super::{SHORTCUT_PAUSE, SHORTCUT_START, SHORTCUT_STOP, Tab, platform};
use eframe::egui;
use std::path::PathBuf;

/// Something a panel asks the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// (Re)load the data the settings name.
    LoadData,
    /// Start a run with the current settings; `true`: continue the last stopped one.
    StartTraining(bool),
    /// Pause or resume the run.
    TogglePause,
    /// Stop the run.
    StopTraining,
    /// Show a run folder in the mining, explorer and runs panels and load its models.
    OpenRun(PathBuf),
    /// Switch to another panel.
    ShowTab(Tab),
    /// Show a line of information above the panels.
    Notice(String),
    /// Ask the predictor about the sample and combination on show in the explorer.
    RequestPrediction,
    /// Open the pretrained mfeat model the app ships in the explorer.
    OpenPretrained,
    /// Open a deployment bundle (`.mmanet`) file in the explorer.
    OpenBundleFile(PathBuf),
    /// Read a sample from these files (one per modality) into the explorer.
    LoadExplorerSample(Vec<PathBuf>),
}

/// What every panel is handed each frame.
pub struct PanelContext<'a> {
    /// The remembered settings (data, preset, methods, …).
    pub settings: &'a mut Settings,
    /// This launch's data and run.
    pub session: &'a Session,
    /// Textures of drawn samples, shared by the panels that show them.
    pub textures: &'a mut TextureCache,
    /// The chosen device, described; `None` while it is being probed.
    pub device: Option<String>,
    /// Whether the last stopped run can be continued.
    pub can_resume: bool,
    actions: Vec<Action>,
}

impl<'a> PanelContext<'a> {
    /// A context over the app's shared state.
    pub fn new(
        settings: &'a mut Settings,
        session: &'a Session,
        textures: &'a mut TextureCache,
        device: Option<String>,
        can_resume: bool,
    ) -> Self {
        PanelContext {
            settings,
            session,
            textures,
            device,
            can_resume,
            actions: Vec::new(),
        }
    }

    /// Asks the app for `action` (carried out after this frame's panel is drawn).
    pub fn ask(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// The actions asked for, in order.
    pub fn into_actions(self) -> Vec<Action> {
        self.actions
    }
}

/// One panel of the app.
pub trait Panel {
    /// Draws the panel into `ui` for one frame.
    fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>);
}

/// Start / pause / stop, shown in the top bar and on the training panel.
pub fn run_buttons(ui: &mut egui::Ui, session: &Session, can_resume: bool) -> Option<Action> {
    let ctx = ui.ctx().clone();
    let mut asked = None;
    if session.status.is_active() {
        if ui
            .button("⏹ Stop")
            .on_hover_text(ctx.format_shortcut(&SHORTCUT_STOP))
            .clicked()
        {
            asked = Some(Action::StopTraining);
        }
        let paused = session.status == RunStatus::Paused;
        if ui
            .button(if paused { "▶ Resume" } else { "⏸ Pause" })
            .on_hover_text(ctx.format_shortcut(&SHORTCUT_PAUSE))
            .clicked()
        {
            asked = Some(Action::TogglePause);
        }
    } else {
        if can_resume
            && ui
                .button("⏩ Continue")
                .on_hover_text(if !platform::IN_BROWSER {
                    "continue the stopped run from its last finished epoch"
                } else {
                    "continue the stopped run: finished stages are kept, the stopped one starts over"
                })
                .clicked()
        {
            asked = Some(Action::StartTraining(true));
        }
        if ui
            .button("▶ Start")
            .on_hover_text(format!(
                "train the teacher and the chosen methods ({})",
                ctx.format_shortcut(&SHORTCUT_START)
            ))
            .clicked()
        {
            asked = Some(Action::StartTraining(false));
        }
    }
    asked
}
