//! The HTTP control API (see `control`).
