//! The connect middleware: the namespace key, the signed token, and the nick (a guest nick,
//! a registered nick's password, or a registration), with the look-alike checks and the
//! CONNECT_ERRORs they answer with.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chat_protocol::events::{Auth, ConnectErrorData, ErrorCode};
use chat_protocol::names;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::look_alike::LookAlikes;
use super::store::{self, Identity, StoreError};
use super::{ChatApp, Session, auth, token};
use crate::engine::{ConnectError, ConnectRequest, lock};

/// Longest password accepted (hashing is deliberately slow; this bounds it).
const PASSWORD_MAX: usize = 1024;

/// How a CONNECT's nick was claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// No password: a guest nick.
    Guest,
    /// A registered nick's password, checked.
    Login,
    /// A new identity, registered by this CONNECT.
    Registered,
}

/// A new registration's place among the registered nicks' skeletons, held while its
/// password is hashed; withdrawn on drop unless kept.
struct Reservation<'a> {
    index: &'a Mutex<LookAlikes>,
    /// The nick this reservation filed (`None`: its key was filed already, by another
    /// registration of the same nick, which owns that entry).
    nick: Option<String>,
}

impl Reservation<'_> {
    fn keep(mut self) {
        self.nick = None;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(nick) = self.nick.take() {
            lock(self.index).remove(&nick);
        }
    }
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> ConnectError {
    ConnectError::new(message).with_data(json!(ConnectErrorData { code }))
}

/// The CONNECT_ERROR for a password attempt that was not made.
fn password_refusal(why: auth::Refusal) -> ConnectError {
    match why {
        auth::Refusal::Busy => refusal(
            ErrorCode::Busy,
            "the server is busy checking passwords: retry in a moment",
        ),
        auth::Refusal::Registrations => refusal(
            ErrorCode::RateLimited,
            "too many nicks were registered from your address lately: try again later",
        ),
    }
}

fn internal(e: impl std::fmt::Display + 'static) -> ConnectError {
    // A store that cannot be reached now (cluster mode, Redis restarting): retryable.
    if let Some(StoreError::Unavailable(why)) =
        (&e as &dyn std::any::Any).downcast_ref::<StoreError>()
    {
        warn!(error = %why, "connect refused: storage unavailable");
        return refusal(
            ErrorCode::Unavailable,
            "storage unavailable: retry in a moment",
        );
    }
    warn!(error = %e, "connect failed");
    refusal(ErrorCode::Internal, "internal error")
}

pub(super) fn check_key(req: &ConnectRequest, key: Option<&str>) -> Result<(), ConnectError> {
    let Some(expected) = key else { return Ok(()) };
    match req.auth.get("key").and_then(Value::as_str) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(refusal(
            ErrorCode::Forbidden,
            format!("wrong key for namespace {}", req.namespace.name()),
        )),
        None => Err(refusal(
            ErrorCode::Forbidden,
            format!("namespace {} requires a key", req.namespace.name()),
        )),
    }
}

/// Compares secrets without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ChatApp {
    /// The nick this CONNECT is for: the connection's, or the one in its auth payload.
    fn requested_nick(req: &ConnectRequest, auth: &Auth) -> Option<String> {
        req.extensions
            .get::<Session>()
            .map(|s| s.nick())
            .or_else(|| auth.nick.clone())
    }

    fn parse_auth(req: &ConnectRequest) -> Result<Auth, ConnectError> {
        serde_json::from_value(req.auth.clone())
            .map_err(|e| refusal(ErrorCode::BadRequest, format!("invalid auth payload: {e}")))
    }

    /// The token middleware: a valid HS256 token whose subject is this connection's nick.
    pub(super) fn check_token(&self, req: &ConnectRequest) -> Result<(), ConnectError> {
        let auth = Self::parse_auth(req)?;
        let ns = req.namespace.name();
        let token = auth.token.as_deref().ok_or_else(|| {
            refusal(
                ErrorCode::TokenRequired,
                format!("namespace {ns} requires a token"),
            )
        })?;
        let secret = self
            .token_secret
            .as_deref()
            .ok_or_else(|| internal("token required but no secret configured"))?;
        let now = store::now_ms() / 1000;
        let claims = token::verify(token, secret.as_bytes(), now).map_err(|e| match e {
            token::TokenError::Expired => refusal(ErrorCode::TokenExpired, e.to_string()),
            other => refusal(ErrorCode::TokenInvalid, other.to_string()),
        })?;
        let nick = Self::requested_nick(req, &auth).unwrap_or_default();
        if names::nick_key(&claims.sub) != names::nick_key(&nick) {
            return Err(refusal(
                ErrorCode::TokenInvalid,
                format!("the token is for '{}', not '{nick}'", claims.sub),
            ));
        }
        Ok(())
    }

    /// The nick middleware: the connection's first namespace claims a nick (unique among
    /// connected users; a registered nick needs its password); later namespaces share it.
    pub(super) async fn claim_nick(&self, req: &ConnectRequest) -> Result<(), ConnectError> {
        let auth = Self::parse_auth(req)?;
        if let Some(session) = req.extensions.get::<Session>() {
            let current = session.nick();
            if auth
                .nick
                .as_ref()
                .is_some_and(|n| names::nick_key(n) != names::nick_key(&current))
            {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    format!("this connection already uses the nick '{current}'"),
                ));
            }
            if !session.sockets().is_empty() {
                return Ok(());
            }
            // Every namespace was left: the nick was released, claim it again (an
            // authenticated session's identity exists by now).
            let login = session.is_authenticated();
            return self.register_everywhere(session, req, login).await;
        }
        let nick = auth.nick.ok_or_else(|| {
            refusal(
                ErrorCode::NickRequired,
                "a nick is required (auth: {\"nick\": ...})",
            )
        })?;
        names::validate_nick(&nick).map_err(|e| refusal(ErrorCode::InvalidName, e.to_string()))?;
        (self.limits.check_nick(&nick)).map_err(|e| refusal(ErrorCode::InvalidName, e))?;
        let claim = self
            .authenticate(req.conn.remote.ip(), &nick, auth.password)
            .await?;
        let session = Session::new(
            &nick,
            claim != Claim::Guest,
            self.limits.max_rooms_per_socket,
            self.limits.joins_per_sec,
        );
        self.register_everywhere(session, req, claim == Claim::Login)
            .await
    }

    /// [`Self::register`], then the claim on every node sharing the store (cluster mode; a
    /// store of one process always agrees): a guest nick held on another node, or one that
    /// passes for a nick online there, is refused, and the local registration undone.
    async fn register_everywhere(
        &self,
        session: Arc<Session>,
        req: &ConnectRequest,
        login: bool,
    ) -> Result<(), ConnectError> {
        let nick = session.nick();
        self.register(session.clone(), req, login)?;
        let claimed = self
            .store
            .claim_online_nick(&nick, session.is_authenticated())
            .await;
        match claimed {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.release(&nick, &session);
                Err(refusal(
                    ErrorCode::NickTaken,
                    format!("nick '{nick}' (or one that looks like it) is in use"),
                ))
            }
            Err(e) => {
                self.release(&nick, &session);
                Err(internal(e))
            }
        }
    }

    /// Checks or claims the nick's identity.
    async fn authenticate(
        &self,
        ip: IpAddr,
        nick: &str,
        password: Option<String>,
    ) -> Result<Claim, ConnectError> {
        let key = names::nick_key(nick);
        // Checked before anything else: a login's password is held through the delay, the
        // queue and the hash, so a long one would cost memory for all of that.
        if password
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > PASSWORD_MAX)
        {
            return Err(refusal(
                ErrorCode::BadRequest,
                format!("a password has 1 to {PASSWORD_MAX} bytes"),
            ));
        }
        let identity = self.store.identity(&key).await.map_err(internal)?;
        match (identity, password) {
            (Some(identity), Some(password)) => {
                let verified = self
                    .passwords
                    .verify(ip, password, identity.password_hash)
                    .await
                    .map_err(password_refusal)?;
                if verified {
                    Ok(Claim::Login)
                } else {
                    Err(refusal(
                        ErrorCode::WrongPassword,
                        format!("wrong password for '{nick}'"),
                    ))
                }
            }
            (Some(_), None) => Err(refusal(
                ErrorCode::NickClaimed,
                format!("'{nick}' is registered: a password is required"),
            )),
            (None, Some(password)) => {
                // The nick's skeletons are held among the registered ones while it is
                // hashed, so two look-alikes registered at once cannot both pass (and a
                // guest arriving meanwhile is refused as a look-alike of a registered nick);
                // no hash for a nick a guest is using, or that passes for an online user's.
                let reservation = self.reserve_registered_nick(nick).await?;
                self.not_in_use(nick)?;
                self.not_like_an_online_nick(nick)?;
                let registration = self
                    .passwords
                    .hash_new(ip, password.clone())
                    .await
                    .map_err(password_refusal)?;
                // Again after the hash, just before the identity is stored: a guest who
                // connected under this nick meanwhile keeps it.
                self.not_in_use(nick)?;
                let created = self
                    .store
                    .create_identity(
                        &key,
                        Identity {
                            nick: nick.to_owned(),
                            password_hash: registration.hash.clone(),
                        },
                    )
                    .await
                    .map_err(internal)?;
                if created {
                    reservation.keep();
                    registration.done();
                    info!(nick = %nick, "nick registered");
                    return Ok(Claim::Registered);
                }
                drop(reservation);
                // Someone registered it a moment ago: check against theirs.
                Box::pin(self.authenticate(ip, nick, Some(password))).await
            }
            (None, None) => {
                self.not_like_a_registered_nick(nick).await?;
                Ok(Claim::Guest)
            }
        }
    }

    /// Refuses to register a nick someone is connected with (a guest, since it has no
    /// identity yet): registering it would lock them out of their own nick.
    fn not_in_use(&self, nick: &str) -> Result<(), ConnectError> {
        if lock(&self.users)
            .get(&names::nick_key(nick))
            .is_some_and(|sessions| !sessions.is_empty())
        {
            return Err(refusal(
                ErrorCode::NickTaken,
                format!("nick '{nick}' is in use"),
            ));
        }
        Ok(())
    }

    /// Refuses a nick that would pass for an online user's (the final check is made again
    /// under the lock in `register`).
    fn not_like_an_online_nick(&self, nick: &str) -> Result<(), ConnectError> {
        match lock(&self.online_nicks).conflict(nick, None) {
            Some(other) => Err(refusal(
                ErrorCode::NickTaken,
                format!("'{nick}' looks like '{other}', who is online"),
            )),
            None => Ok(()),
        }
    }

    /// Checks a new registration against the registered nicks and files it among them at
    /// once; the reservation is withdrawn when dropped unkept.
    async fn reserve_registered_nick<'a>(
        &'a self,
        nick: &str,
    ) -> Result<Reservation<'a>, ConnectError> {
        let index = self.registered_look_alikes().await?;
        let mut guard = lock(index);
        if let Some(other) = guard.conflict(nick, None) {
            return Err(refusal(
                ErrorCode::NickClaimed,
                format!("'{nick}' looks like the registered nick '{other}': choose another"),
            ));
        }
        let filed = guard.insert(nick);
        drop(guard);
        Ok(Reservation {
            index,
            nick: filed.then(|| nick.to_owned()),
        })
    }

    /// The registered nicks by skeleton, read from the store the first time.
    async fn registered_look_alikes(&self) -> Result<&Mutex<LookAlikes>, ConnectError> {
        self.registered_nicks
            .get_or_try_init(|| async {
                let nicks = self.store.registered_nicks().await.map_err(internal)?;
                Ok(Mutex::new(LookAlikes::from_nicks(nicks)))
            })
            .await
    }

    /// Refuses a nick that is not registered but would pass for one that is.
    pub(crate) async fn not_like_a_registered_nick(&self, nick: &str) -> Result<(), ConnectError> {
        let index = self.registered_look_alikes().await?;
        match lock(index).conflict(nick, None) {
            Some(other) => Err(refusal(
                ErrorCode::NickClaimed,
                format!("'{nick}' looks like the registered nick '{other}': choose another"),
            )),
            None => Ok(()),
        }
    }

    /// Puts a session under its nick. `login`: an existing identity proved with its
    /// password, which is let in whatever look-alike is online (two registered nicks may
    /// already look alike); anyone else must not pass for an online user.
    fn register(
        &self,
        session: Arc<Session>,
        req: &ConnectRequest,
        login: bool,
    ) -> Result<(), ConnectError> {
        let nick = session.nick();
        let mut users = lock(&self.users);
        let entry = users.entry(names::nick_key(&nick)).or_default();
        if !entry.iter().any(|s| Arc::ptr_eq(s, &session)) {
            // A nick is one user's; only a registered identity may be connected twice.
            let same_identity =
                session.is_authenticated() && entry.iter().all(|s| s.is_authenticated());
            if !entry.is_empty() && !same_identity {
                return Err(refusal(
                    ErrorCode::NickTaken,
                    format!("nick '{nick}' is in use"),
                ));
            }
            if entry.is_empty() {
                let mut online = lock(&self.online_nicks);
                if let Some(other) = online.conflict(&nick, None).filter(|_| !login) {
                    let message = format!("'{nick}' looks like '{other}', who is online");
                    drop(online);
                    users.remove(&names::nick_key(&nick));
                    return Err(refusal(ErrorCode::NickTaken, message));
                }
                online.insert(&nick);
            }
            entry.push(session.clone());
        }
        drop(users);
        req.extensions.insert(session.clone());
        info!(nick = %nick, remote = %req.conn.remote, transport = ?req.conn.transport(), registered = session.is_authenticated(), "user connected");
        Ok(())
    }
}
