//! What the end-to-end tests share: the lab (the dockerized Asterisk, reached
//! over ARI), real SIP callers (sipp), callrec as a child process, a webhook
//! receiver, an S3-compatible server, a TCP proxy to cut ARI with, and tone
//! analysis of recordings.

#![allow(dead_code)]

pub mod ami;
pub mod audio;
pub mod callrec;
pub mod checks;
pub mod heard;
pub mod lab;
pub mod proxy;
pub mod s3;
pub mod sipp;
pub mod webhook;
