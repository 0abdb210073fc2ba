//! treatywatch: watch news feeds for changes in which states are bound by
//! which treaties. See ARCHITECTURE.md for the map of the code.

pub mod baseline;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod depositary;
pub mod domain;
pub mod feed;
pub mod fetch;
pub mod health;
pub mod ingest;
pub mod logging;
pub mod mailbox;
pub mod normalize;
pub mod notice;
pub mod notify;
pub mod poll;
pub mod reclassify;
pub mod store;
pub mod text;
pub mod web;
