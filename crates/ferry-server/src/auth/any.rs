//! [`AnyAuthenticator`]: one type over the built-in authenticators, chosen at run time, so that a
//! binary offering several compiles the server once (as [`crate::storage::AnyStorage`] does for
//! storage).

use ferry_proto::session::AuthError;

use super::{
    Account, Authenticator, Credentials, PgAuthenticator, StaticAuthenticator, UsersAuthenticator,
};

/// An authenticator chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyAuthenticator {
    /// Users from the command line or environment.
    Static(StaticAuthenticator),
    /// A users file.
    Users(UsersAuthenticator),
    /// A PostgreSQL users database.
    Postgres(PgAuthenticator),
}

impl Authenticator for AnyAuthenticator {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Account, AuthError> {
        match self {
            Self::Static(a) => a.authenticate(credentials).await,
            Self::Users(a) => a.authenticate(credentials).await,
            Self::Postgres(a) => a.authenticate(credentials).await,
        }
    }
}
