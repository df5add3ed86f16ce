//! HS256 JSON Web Tokens for namespaces that require one: `header.payload.signature`, each
//! base64url without padding; the header must say `"alg":"HS256"` (nothing else is accepted,
//! so `none` and algorithm-confusion tokens fail); the payload needs `sub` (the nick) and
//! `exp` (seconds since the epoch; exact: a token is refused from its `exp` on); `nbf` (not
//! before), when present, is honoured with [`NBF_LEEWAY`] seconds of leeway for clocks that
//! run a little behind the issuer's. Built on the RustCrypto `hmac` and `sha2` crates; the
//! signature comparison is constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token algorithm must be HS256")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
}

/// Seconds a token's `nbf` may lie in the future: a token issued just now works on a
/// server whose clock is a little behind the issuer's. `exp` gets none, so a token is never
/// accepted after it expired.
pub const NBF_LEEWAY: i64 = 30;

/// The payload as read: the claims we return and the ones we only check.
#[derive(Deserialize)]
struct Payload {
    #[serde(flatten)]
    claims: Claims,
    /// A NumericDate (RFC 7519), which may have a fraction.
    nbf: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Checks signature, algorithm and expiry (`now` in seconds since the epoch).
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let mut m = mac(secret);
    m.update(format!("{h}.{p}").as_bytes());
    m.verify_slice(&decode(s)?)
        .map_err(|_| TokenError::Signature)?;
    let Payload { claims, nbf } =
        serde_json::from_slice(&decode(p)?).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf.floor() > now.saturating_add(NBF_LEEWAY) as f64) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// Makes a token (for tests, tools and operators issuing tokens).
pub fn sign(claims: &Claims, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut m = mac(secret);
    m.update(format!("{header}.{payload}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{header}.{payload}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn round_trip_and_refusals() {
        let claims = Claims {
            sub: "ada".into(),
            exp: NOW + 60,
        };
        let t = sign(&claims, b"secret");
        assert_eq!(verify(&t, b"secret", NOW), Ok(claims.clone()));
        assert_eq!(verify(&t, b"other", NOW), Err(TokenError::Signature));
        assert_eq!(verify(&t, b"secret", NOW + 60), Err(TokenError::Expired));
        assert_eq!(verify("a.b", b"secret", NOW), Err(TokenError::Malformed));
        assert_eq!(
            verify("!!.!!.!!", b"secret", NOW),
            Err(TokenError::Malformed)
        );
        // alg "none" with an empty signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(verify(&none, b"secret", NOW), Err(TokenError::Algorithm));
        // A payload swapped under a valid signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "eve".into(),
                exp: NOW + 60,
            })
            .unwrap(),
        );
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), b"secret", NOW),
            Err(TokenError::Signature)
        );
    }

    /// A token with extra claims, signed the way an issuer would.
    fn signed(payload: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let mut m = mac(b"secret");
        m.update(format!("{header}.{payload}").as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        format!("{header}.{payload}.{sig}")
    }

    #[test]
    fn not_before_is_honoured_with_its_leeway() {
        let at = |nbf: i64| signed(serde_json::json!({"sub": "ada", "exp": NOW + 600, "nbf": nbf}));
        assert!(verify(&at(NOW - 5), b"secret", NOW).is_ok());
        let fractional =
            signed(serde_json::json!({"sub": "ada", "exp": NOW + 600, "nbf": NOW as f64 + 0.5}));
        assert!(verify(&fractional, b"secret", NOW).is_ok());
        assert!(verify(&at(NOW + NBF_LEEWAY), b"secret", NOW).is_ok());
        assert_eq!(
            verify(&at(NOW + NBF_LEEWAY + 1), b"secret", NOW),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            verify(&at(NOW + 3600), b"secret", NOW),
            Err(TokenError::NotYetValid)
        );
        // Without nbf, as before; a non-numeric nbf is malformed.
        let plain = signed(serde_json::json!({"sub": "ada", "exp": NOW + 600}));
        assert!(verify(&plain, b"secret", NOW).is_ok());
        let bad = signed(serde_json::json!({"sub": "ada", "exp": NOW + 600, "nbf": "soon"}));
        assert_eq!(verify(&bad, b"secret", NOW), Err(TokenError::Malformed));
    }
}
