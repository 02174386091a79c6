//! The `mmanet` app as a library: its panels, workers and window, shared by the desktop binary
//! (`src/main.rs`) and the browser page (`web/`).

pub mod gui;
