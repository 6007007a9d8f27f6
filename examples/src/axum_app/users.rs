//! The demo's user directory: two users with fixed ids and passwords.
//!
//! A real application looks users up in its database and verifies a
//! password hash (argon2, scrypt) instead; nothing here is session-specific.

use uuid::Uuid;

/// A known user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    /// Stable id: the session library's `user_id`.
    pub id: Uuid,
    /// Login name.
    pub name: &'static str,
    password: &'static str,
}

const USERS: [User; 2] = [
    User {
        id: Uuid::from_u128(0xa11ce),
        name: "alice",
        password: "wonderland",
    },
    User {
        id: Uuid::from_u128(0xb0b),
        name: "bob",
        password: "builder",
    },
];

/// The user with this name and password, if any.
pub fn authenticate(name: &str, password: &str) -> Option<User> {
    USERS
        .into_iter()
        .find(|u| u.name == name && u.password == password)
}

/// The user with this id, if any.
pub fn by_id(id: Uuid) -> Option<User> {
    USERS.into_iter().find(|u| u.id == id)
}

/// Checks `password` for the user with id `id` (re-authentication for step-up).
pub fn check_password(id: Uuid, password: &str) -> bool {
    by_id(id).is_some_and(|u| u.password == password)
}
