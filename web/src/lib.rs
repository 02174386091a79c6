//! Browser app (see issue 6).
