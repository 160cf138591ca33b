//! Pure types and rules of auth: parsed inputs, users, the throttle rule. No axum, no sqlx.

mod credentials;
mod throttle;
mod user;

pub use credentials::{Email, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Name, Password, Phone};
pub use throttle::{ThrottlePolicy, ThrottleState};
pub use user::{Contact, NewUser, ProfileUpdate, User, UserCredentials};
