//! Integration tests through HTTP against the real service and a real database.
mod cli;
mod errors;
mod helpers;
mod lifecycle;
mod races;
