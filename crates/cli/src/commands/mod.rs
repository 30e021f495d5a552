//! One module per family of commands.

pub mod compare;
pub mod demo;
pub mod probe;
pub mod text;
pub mod tools;
pub mod train;
pub mod transfer;
pub mod user;
