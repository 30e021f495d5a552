//! One module per command (the shared training flags in `train`).

pub mod compare;
pub mod demo;
pub mod eval;
pub mod export;
pub mod finetune;
pub mod import;
pub mod inspect;
pub mod lr_find;
pub mod predict;
pub mod pretrain;
pub mod probe;
pub mod text;
pub mod train;
pub mod transfer;
pub mod user;
