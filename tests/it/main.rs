//! One integration-test binary; modules are named after features.

mod bad_input;
mod code_git;
mod common;
mod concurrency;
mod containers;
mod corruption;
mod crash;
mod diskfull;
mod examples;
mod fidelity;
mod fuzz;
mod gdrive;
mod golden;
mod hostile_remote;
mod layers;
mod mlflow;
mod offline_seal;
mod output;
mod pegasus;
mod properties;
mod remote;
mod reproduce;
mod roundtrip;
mod runs;
mod safety;
mod secrets;
