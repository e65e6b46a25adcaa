//! The FastAGI server (see `control`).
