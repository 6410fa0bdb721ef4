//! Running the gate rather than passing proposals through it: setting a store up, the policy in
//! force and its versions, and the pauses. Each change here is an admin's act, so each is one
//! transaction that ends with an audit event, whichever command or test asks for it.

pub mod access;
pub mod audit;
pub mod pauses;
pub mod policy;
pub mod setup;
pub mod sources;
