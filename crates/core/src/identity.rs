//! Identity: access tokens (JWT) and the caller they name.
//!
//! Access tokens are HS256 JWTs signed with a shared secret (the seeds' choice). Verification
//! pins the algorithm (so `alg: none` and algorithm confusion fail), requires `exp`, `iat`,
//! `iss`, `aud` and `sub`, checks issuer and audience, allows at most 30 s of clock skew, and
//! requires the `token_use` claim to be `access` (RFC 8725 §3.11), so no other kind of token can
//! stand in for an access token. Header fields such as `kid`, `jku` or `jwk` are never used to
//! find a key: there is one configured key.
//!
//! Every service verifies the token itself ([`Identity`] is an extractor); a service never
//! trusts an identity header from the network.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{HeaderMap, Method, header, request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::JwtConfig;
use crate::ids::UserId;
use crate::problem::Problem;
use crate::secret::constant_time_eq;

/// The name of the cookie that carries the access token.
pub const ACCESS_COOKIE: &str = "access_token";
/// The `token_use` claim value of access tokens.
pub const ACCESS_TOKEN_USE: &str = "access";

/// A caller's role. Ordered by privilege.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Buys tickets.
    User,
    /// Publishes and manages their own events.
    Organizer,
    /// Manages the platform.
    Admin,
}

impl Role {
    /// The lowercase wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Organizer => "organizer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "organizer" => Ok(Role::Organizer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`; expected user, organizer or admin"
            )),
        }
    }
}

/// The claims of an evently access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: Uuid,
    /// What the token is for; `access` for access tokens.
    pub token_use: String,
}

/// Why a token was refused. All of them answer 401.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// No token was presented.
    #[error("missing bearer token")]
    Missing,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// Malformed, badly signed, wrong issuer/audience/algorithm/use, or not yet valid.
    #[error("invalid token")]
    Invalid,
}

impl From<TokenError> for Problem {
    fn from(error: TokenError) -> Self {
        Problem::unauthorized(error.to_string())
    }
}

/// Signs and verifies access tokens with one HS256 key.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: time::Duration,
    leeway: i64,
    verified: VerifiedTokens,
}

/// Access tokens this process has verified, with their claims, so that a token presented again
/// (every request of a signed-in client) skips the base64, JSON and HMAC work. Only tokens that
/// passed [`JwtKeys::verify`] enter; a hit is answered only while the token is inside its
/// validity window (`nbf`/`iat` not in the future beyond the leeway, `exp` not passed — without
/// the leeway, so the last seconds go through full verification), which is exactly when full
/// verification would accept it again: a cached answer never differs from a computed one.
/// Lookups compare the whole token; the map's hasher is randomly keyed per process.
struct VerifiedTokens {
    // Held only for a lookup or an insert, never across an await.
    map: std::sync::Mutex<std::collections::HashMap<Box<str>, Claims>>,
    /// When expired tokens were last dropped (unix seconds): at most once a second, so that a
    /// cache full of live tokens (a rush of new sign-ins) is not scanned on every insert.
    purged_at: std::sync::atomic::AtomicI64,
}

impl VerifiedTokens {
    /// At most this many tokens are kept: about a megabyte, and enough for the signed-in
    /// clients one process serves in a token lifetime at the rates evently targets.
    const CAPACITY: usize = 4096;

    fn new() -> Self {
        Self {
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
            purged_at: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn get(&self, token: &str, now: i64, leeway: i64) -> Option<Claims> {
        let map = self.map.lock().ok()?;
        let claims = map.get(token)?;
        (claims.exp >= now && claims.nbf <= now + leeway && claims.iat <= now + leeway)
            .then(|| claims.clone())
    }

    fn insert(&self, token: &str, claims: &Claims, now: i64) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= Self::CAPACITY
            && self
                .purged_at
                .swap(now, std::sync::atomic::Ordering::Relaxed)
                != now
        {
            map.retain(|_, c| c.exp >= now);
        }
        if map.len() >= Self::CAPACITY {
            // Still full of live tokens: drop one arbitrary entry; it is verified again if
            // it comes back.
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(token.into(), claims.clone());
    }
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl JwtKeys {
    /// Keys for `config`, signing with `secret`.
    pub fn new(config: &JwtConfig, secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub", "nbf"]);
        validation.leeway = config.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: time::Duration::seconds(
                i64::try_from(config.access_ttl_seconds).unwrap_or(900),
            ),
            leeway: i64::try_from(config.leeway_seconds).unwrap_or(30),
            verified: VerifiedTokens::new(),
        }
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Issues an access token for `user` with `role`, valid from `now`.
    ///
    /// # Errors
    /// Only if signing fails, which cannot happen for HS256 with a valid key.
    pub fn issue_access(
        &self,
        user: UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> anyhow::Result<IssuedToken> {
        let iat = now.unix_timestamp();
        let claims = Claims {
            sub: user.0,
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: (now + self.access_ttl).unix_timestamp(),
            iat,
            nbf: iat,
            jti: Uuid::new_v4(),
            token_use: ACCESS_TOKEN_USE.into(),
        };
        self.sign(&claims).map(|token| IssuedToken {
            token,
            expires_in: u64::try_from(self.access_ttl.whole_seconds()).unwrap_or(0),
        })
    }

    /// Signs arbitrary claims with this key (HS256). Tests use it to forge edge cases.
    ///
    /// # Errors
    /// If the claims cannot be serialised.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token: {e}"))
    }

    /// Verifies an access token and returns its claims.
    ///
    /// # Errors
    /// [`TokenError::Expired`] past `exp` + leeway; [`TokenError::Invalid`] for anything else
    /// wrong (signature, algorithm, issuer, audience, `nbf`, `iat` in the future, token use).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        // Oversized tokens are refused before any parsing work.
        if token.len() > 4096 {
            return Err(TokenError::Invalid);
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if let Some(claims) = self.verified.get(token, now, self.leeway) {
            return Ok(claims);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let claims = data.claims;
        if claims.iat > now + self.leeway || claims.token_use != ACCESS_TOKEN_USE {
            return Err(TokenError::Invalid);
        }
        self.verified.insert(token, &claims, now);
        Ok(claims)
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Who is calling.
    pub user_id: UserId,
    /// Their role, as of when the token was issued.
    pub role: Role,
}

impl Identity {
    /// Whether the caller has one of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }

    /// Requires one of `roles`.
    ///
    /// # Errors
    /// 403 naming the roles that would be allowed.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), Problem> {
        if self.has_any(roles) {
            Ok(())
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(Problem::forbidden(format!(
                "this action needs the role {}",
                names.join(" or ")
            )))
        }
    }

    /// Requires the admin role.
    ///
    /// # Errors
    /// 403.
    pub fn require_admin(&self) -> Result<(), Problem> {
        self.require_any(&[Role::Admin])
    }
}

/// Finds the access token of a request: `Authorization: Bearer …`, or, for safe methods only,
/// the `access_token` cookie. A state-changing request must carry the header; the gateway's
/// cookie bridge adds it after its CSRF check. Tokens in the URL are never accepted.
///
/// # Errors
/// [`TokenError::Missing`] when there is none; [`TokenError::Invalid`] for a malformed header.
pub fn token_from_headers<'a>(
    method: &Method,
    headers: &'a HeaderMap,
) -> Result<&'a str, TokenError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(TokenError::Invalid);
        }
        let value = value.to_str().map_err(|_| TokenError::Invalid)?;
        let (scheme, token) = value.split_once(' ').ok_or(TokenError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(TokenError::Invalid);
        }
        return Ok(token.trim());
    }
    if method.is_safe()
        && let Some(token) = cookie(headers, ACCESS_COOKIE)
    {
        return Ok(token);
    }
    Err(TokenError::Missing)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

impl<S> FromRequestParts<S> for Identity
where
    Arc<JwtKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<JwtKeys>::from_ref(state);
        let token = token_from_headers(&parts.method, &parts.headers)?;
        let claims = keys.verify(token)?;
        let identity = Identity {
            user_id: UserId(claims.sub),
            role: claims.role,
        };
        tracing::Span::current().record("user.id", tracing::field::display(identity.user_id));
        Ok(identity)
    }
}

/// The credential services present to each other's `/internal/*` routes.
#[derive(Clone)]
pub struct InternalToken(pub Arc<SecretString>);

impl fmt::Debug for InternalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InternalToken(<redacted>)")
    }
}

/// Header that carries the internal service credential.
pub const INTERNAL_TOKEN_HEADER: &str = "x-internal-token";

/// Proof that the request came from another evently service (it presented the internal
/// credential). `/internal/*` handlers take this extractor; the gateway never forwards them.
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

impl<S> FromRequestParts<S> for InternalCaller
where
    InternalToken: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let expected = InternalToken::from_ref(state);
        let presented = parts
            .headers
            .get(INTERNAL_TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !presented.is_empty()
            && constant_time_eq(presented, expected.0.expose_secret().as_bytes())
        {
            Ok(InternalCaller)
        } else {
            // Not revealing that the route exists to callers without the credential.
            Err(Problem::not_found("no such route"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            &JwtConfig::default(),
            &SecretString::from("0123456789abcdef0123456789abcdef-test"),
        )
    }

    fn claims(now: i64) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            role: Role::User,
            iss: "evently".into(),
            aud: "evently".into(),
            exp: now + 60,
            iat: now,
            nbf: now,
            jti: Uuid::new_v4(),
            token_use: "access".into(),
        }
    }

    fn now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_token_verified_twice_gives_the_same_claims() {
        let keys = keys();
        let issued = claims(now());
        let token = keys.sign(&issued).unwrap();

        let first = keys.verify(&token).unwrap();
        let second = keys.verify(&token).unwrap();

        assert_eq!(first, issued);
        assert_eq!(second, issued);
    }

    #[test]
    fn a_remembered_token_is_not_answered_outside_its_validity_window() {
        let cache = VerifiedTokens::new();
        let now = now();
        let c = claims(now);
        cache.insert("t", &c, now);

        assert_eq!(cache.get("t", now, 30), Some(c.clone()));
        assert_eq!(cache.get("t", c.exp + 1, 30), None);
        assert_eq!(cache.get("t", c.nbf - 31, 30), None);
        assert_eq!(cache.get("other", now, 30), None);
    }

    #[test]
    fn remembered_tokens_are_bounded() {
        let cache = VerifiedTokens::new();
        let now = now();
        let c = claims(now);

        for i in 0..VerifiedTokens::CAPACITY + 10 {
            cache.insert(&format!("token-{i}"), &c, now);
        }

        assert_eq!(cache.map.lock().unwrap().len(), VerifiedTokens::CAPACITY);
    }

    #[test]
    fn issued_token_verifies() {
        let k = keys();
        let user = UserId::new();
        let t = k
            .issue_access(user, Role::Organizer, OffsetDateTime::now_utc())
            .unwrap();
        let c = k.verify(&t.token).unwrap();
        assert_eq!(c.sub, user.0);
        assert_eq!(c.role, Role::Organizer);
        assert_eq!(t.expires_in, 900);
    }

    #[test]
    fn expiry_respects_the_leeway_boundary() {
        let k = keys();
        let mut c = claims(now() - 600);
        c.exp = now() - 31;
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(TokenError::Expired));
        c.exp = now() - 25;
        assert!(k.verify(&k.sign(&c).unwrap()).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let c = claims(now());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
            for sig in ["", "abc"] {
                let token = format!("{header}.{payload}.{sig}");
                assert_eq!(k.verify(&token), Err(TokenError::Invalid), "{alg}");
            }
        }
    }

    #[test]
    fn tampered_payload_is_refused() {
        let k = keys();
        let token = k.sign(&claims(now())).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c = claims(now());
        c.role = Role::Admin;
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(k.verify(&parts.join(".")), Err(TokenError::Invalid));
    }

    #[test]
    fn wrong_issuer_audience_use_and_future_iat_are_refused() {
        let k = keys();
        let mut c = claims(now());
        c.iss = "someone-else".into();
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(TokenError::Invalid));
        let mut c = claims(now());
        c.aud = "other-service".into();
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(TokenError::Invalid));
        let mut c = claims(now());
        c.token_use = "refresh".into();
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(TokenError::Invalid));
        let mut c = claims(now());
        c.iat = now() + 3600;
        c.nbf = now();
        c.exp = now() + 7200;
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(TokenError::Invalid));
        let mut c = claims(now());
        c.nbf = now() + 120;
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(TokenError::Invalid));
    }

    #[test]
    fn missing_claims_are_refused() {
        let k = keys();
        let token = k
            .sign(
                &serde_json::json!({"sub": Uuid::new_v4(), "role": "admin", "exp": now() + 60,
                "token_use": "access"}),
            )
            .unwrap();
        assert_eq!(k.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn other_key_is_refused() {
        let other = JwtKeys::new(
            &JwtConfig::default(),
            &SecretString::from("another-secret-another-secret-another"),
        );
        let token = other.sign(&claims(now())).unwrap();
        assert_eq!(keys().verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let k = keys();
        for t in ["", "a.b", "a.b.c", "!!!.###.$$$", &"a".repeat(100_000)] {
            assert_eq!(k.verify(t), Err(TokenError::Invalid), "{t:.20}");
        }
    }

    #[test]
    fn cookie_is_only_a_token_source_for_safe_methods() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; access_token=tok".parse().unwrap());
        assert_eq!(token_from_headers(&Method::GET, &headers), Ok("tok"));
        assert_eq!(
            token_from_headers(&Method::POST, &headers),
            Err(TokenError::Missing)
        );
        headers.insert(header::AUTHORIZATION, "Bearer hdr".parse().unwrap());
        assert_eq!(token_from_headers(&Method::POST, &headers), Ok("hdr"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            token_from_headers(&Method::GET, &headers),
            Err(TokenError::Invalid)
        );
    }

    mod parser_properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any text as a token is refused, never accepted and never a panic.
            #[test]
            fn arbitrary_text_never_verifies(token in ".{0,300}") {
                prop_assert!(keys().verify(&token).is_err());
            }

            /// A valid token with any one character of its signature changed is refused.
            #[test]
            fn a_token_with_a_changed_signature_never_verifies(at in 0usize..43, by in 1u8..63) {
                let token = keys().sign(&claims(now())).unwrap();
                let (head, signature) = token.rsplit_once('.').unwrap();
                const ALPHABET: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let mut bytes = signature.as_bytes().to_vec();
                let i = at % bytes.len();
                let pos = ALPHABET.iter().position(|c| *c == bytes[i]).unwrap();
                bytes[i] = ALPHABET[(pos + usize::from(by)) % 64];
                let changed = format!("{head}.{}", String::from_utf8(bytes).unwrap());
                // Base64url's last character carries spare bits: a change there may decode to
                // the same signature, which is the same token.
                let decoded = |s: &str| URL_SAFE_NO_PAD.decode(s.rsplit_once('.').unwrap().1).ok();
                prop_assume!(decoded(&changed) != decoded(&token));
                prop_assert!(keys().verify(&changed).is_err());
            }

            /// Malformed tokens of every kind are refused as invalid, never accepted and never
            /// a panic (A-11): two segments, segments that are not base64url, oversized
            /// tokens, a header or claims that are not JSON, and headers naming another
            /// algorithm (`none`, other HMAC sizes, public-key algorithms) even when the
            /// signature is a valid HMAC of the configured key.
            #[test]
            fn malformed_tokens_are_refused_as_invalid(
                segment in "[A-Za-z0-9_-]{0,60}",
                junk in "[^A-Za-z0-9_.-]{1,8}",
                not_json in "[ -~]{0,40}",
                alg in prop::sample::select(vec![
                    "none", "None", "NONE", "HS384", "HS512", "RS256", "ES256", "PS256",
                    "EdDSA", "hs256", "",
                ]),
                size in 4097usize..120_000,
            ) {
                let k = keys();
                let valid = k.sign(&claims(now())).unwrap();
                let (head, rest) = valid.split_once('.').unwrap();
                let (payload, signature) = rest.split_once('.').unwrap();
                let hmac = |message: &str| {
                    jsonwebtoken::crypto::sign(
                        message.as_bytes(),
                        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef-test"),
                        Algorithm::HS256,
                    )
                    .unwrap()
                };
                let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
                let candidates = [
                    format!("{head}.{payload}"),
                    format!("{head}.{segment}"),
                    format!("{head}{junk}.{payload}.{signature}"),
                    format!("{head}.{payload}{junk}.{signature}"),
                    format!("{head}.{payload}.{signature}{junk}"),
                    format!("{valid}.{segment}"),
                    format!("{head}.{}.{signature}", "A".repeat(size)),
                    "a".repeat(size),
                    {
                        let message = format!("{}.{payload}", encode(&not_json));
                        format!("{message}.{}", hmac(&message))
                    },
                    {
                        let message = format!("{head}.{}", encode(&not_json));
                        format!("{message}.{}", hmac(&message))
                    },
                    {
                        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
                        let message = format!("{}.{payload}", encode(&header));
                        format!("{message}.{}", hmac(&message))
                    },
                    {
                        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
                        format!("{}.{payload}.", encode(&header))
                    },
                ];
                for token in candidates {
                    prop_assert_eq!(k.verify(&token), Err(TokenError::Invalid), "{:.80}", token);
                }
                // The valid token still verifies: the refusals above are not a broken key.
                prop_assert!(k.verify(&valid).is_ok());
            }

            /// `token_from_headers` never panics on any `Authorization` or `Cookie` bytes,
            /// and a token it finds is never empty.
            #[test]
            fn token_sources_take_any_header_bytes(
                authorization in proptest::collection::vec(any::<u8>(), 0..120),
                cookies in proptest::collection::vec(any::<u8>(), 0..120),
            ) {
                let mut headers = HeaderMap::new();
                if let Ok(v) = axum::http::HeaderValue::from_bytes(&cookies) {
                    headers.insert(header::COOKIE, v);
                }
                if let Ok(token) = token_from_headers(&Method::GET, &headers) {
                    prop_assert!(!token.is_empty());
                }
                prop_assert_eq!(token_from_headers(&Method::POST, &headers), Err(TokenError::Missing));
                if let Ok(v) = axum::http::HeaderValue::from_bytes(&authorization) {
                    headers.insert(header::AUTHORIZATION, v);
                    let safe = token_from_headers(&Method::GET, &headers);
                    prop_assert_eq!(safe, token_from_headers(&Method::POST, &headers));
                    if let Ok(token) = safe {
                        prop_assert!(!token.trim().is_empty());
                    }
                }
            }

            /// The cookie parser finds a cookie among any others and never panics on any
            /// header text.
            #[test]
            fn cookies_are_found_among_others_and_any_header_is_safe(
                before in "[a-z]{1,8}=[A-Za-z0-9]{0,12}",
                value in "[A-Za-z0-9._-]{1,40}",
                junk in "[ -~]{0,200}",
            ) {
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::COOKIE,
                    format!("{before}; access_token={value}; z=1").parse().unwrap(),
                );
                prop_assert_eq!(cookie(&headers, ACCESS_COOKIE), Some(value.as_str()));
                let mut odd = HeaderMap::new();
                if let Ok(v) = junk.parse() {
                    odd.insert(header::COOKIE, v);
                }
                let _ = cookie(&odd, ACCESS_COOKIE);
            }
        }
    }
}
