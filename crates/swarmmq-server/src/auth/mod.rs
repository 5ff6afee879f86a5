//! API-key authentication on the node: which request needs which permission
//! ([`authorize`]), the key store as the node sees it, reloaded when its file changes
//! ([`AuthState`]), and the task that watches the file ([`watch`]).

mod authorize;
mod state;
mod watch;

pub(crate) use authorize::authorize;
pub(crate) use state::AuthState;
pub(crate) use watch::watch;

/// What every refusal for a missing key tells the client to do.
pub(crate) const HOW_TO_PASS_A_KEY: &str =
    "this node requires an API key: pass --api-key or set SWARMMQ_API_KEY";
