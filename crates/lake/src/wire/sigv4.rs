//! SigV4 verification of incoming requests.
//!
//! The lake does not walk the HMAC chain itself: it rebuilds the request
//! from the headers the client says it signed, signs it again with the
//! `aws-sigv4` crate (the same code the AWS SDKs sign with) using the
//! secret of the named key, and compares the two signatures in constant
//! time.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, Method, Uri};
use subtle::ConstantTimeEq as _;

use crate::error::LakeError;
use crate::keys::{AccessKey, Keyring};

/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// A request whose signature checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key that signed.
    pub key: AccessKey,
    /// The region of the credential scope.
    pub region: String,
}

impl Caller {
    /// The caller's account ID.
    pub fn account(&self) -> &str {
        &self.key.account_id
    }
}

fn denied(code: &'static str, message: impl std::fmt::Display) -> LakeError {
    LakeError::with_status(403, code, message)
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct AuthHeader<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_auth(value: &str) -> Result<AuthHeader<'_>, LakeError> {
    let incomplete = |what: &str| {
        LakeError::bad(
            "IncompleteSignatureException",
            format!("Authorization header is malformed: {what}"),
        )
    };
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("only AWS4-HMAC-SHA256 is supported"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential is missing"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders is missing"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature is missing"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(incomplete(
            "Credential must be <key>/<date>/<region>/<service>/aws4_request",
        ));
    };
    Ok(AuthHeader {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let dt = time::PrimitiveDateTime::parse(value, format).ok()?;
    Some(dt.assume_utc().into())
}

/// What a request's headers establish before its body is read: a known
/// key scoped to the service, a fresh date, and the headers it signed.
struct Claimed<'a> {
    auth: AuthHeader<'a>,
    key: &'a AccessKey,
    signed_at: SystemTime,
    signed: Vec<(&'a str, &'a str)>,
}

/// The checks a request's headers allow on their own: the listener makes
/// them before it takes any of its body budget or reads the body, so that a
/// client without a key of this lake holds nothing.
pub fn check_headers(
    keys: &Keyring,
    service: &str,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<(), LakeError> {
    claimed(keys, service, headers, now).map(drop)
}

fn claimed<'a>(
    keys: &'a Keyring,
    service: &str,
    headers: &'a HeaderMap,
    now: SystemTime,
) -> Result<Claimed<'a>, LakeError> {
    let Some(auth) = headers.get(http::header::AUTHORIZATION) else {
        return Err(denied(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: requests must be signed with SigV4",
        ));
    };
    let auth = auth.to_str().map_err(|_| {
        LakeError::bad(
            "IncompleteSignatureException",
            "Authorization header is not ASCII",
        )
    })?;
    let auth = parse_auth(auth)?;
    let Some(key) = keys.get(auth.access_key_id) else {
        return Err(denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    if headers.contains_key("x-amz-security-token") {
        return Err(denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid: this lake issues no session tokens.",
        ));
    }
    if auth.service != service {
        return Err(denied(
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            LakeError::bad(
                "IncompleteSignatureException",
                "X-Amz-Date header is required",
            )
        })?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        LakeError::bad(
            "IncompleteSignatureException",
            "X-Amz-Date must be YYYYMMDDTHHMMSSZ",
        )
    })?;
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(denied(
            "InvalidSignatureException",
            "Credential date does not match X-Amz-Date.",
        ));
    }
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(denied(
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is more than 15 minutes from the server's time."
            ),
        ));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(LakeError::bad(
            "IncompleteSignatureException",
            "SignedHeaders must include host",
        ));
    }
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                LakeError::bad(
                    "IncompleteSignatureException",
                    format!("signed header {name} is missing from the request"),
                )
            })?;
        signed.push((*name, value));
    }
    Ok(Claimed {
        auth,
        key,
        signed_at,
        signed,
    })
}

/// Verifies the request's signature for `service` (`cloudtrail` or
/// `cloudtrail-data`) and returns who signed it.
pub fn verify(
    keys: &Keyring,
    service: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Caller, LakeError> {
    let Claimed {
        auth,
        key,
        signed_at,
        signed,
    } = claimed(keys, service, headers, now)?;
    let identity: Identity = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "auditlake-lake",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client listed: the SDK's default exclusions
    // (user-agent and the like) are for senders, not for a verifier.
    settings.excluded_headers = Some(vec![Cow::Borrowed("authorization")]);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|e| LakeError::bad("IncompleteSignatureException", e))?;
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = SignableRequest::new(
        method.as_str(),
        path_and_query,
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| LakeError::bad("IncompleteSignatureException", e))?;
    let expected = sign(request, &params.into())
        .map_err(|e| LakeError::bad("IncompleteSignatureException", e))?;
    if expected
        .signature()
        .as_bytes()
        .ct_eq(auth.signature.as_bytes())
        .into()
    {
        Ok(Caller {
            key: key.clone(),
            region: auth.region.to_owned(),
        })
    } else {
        Err(denied(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AccessKey {
        AccessKey {
            access_key_id: "AKIDEXAMPLE0000000".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            account_id: "123456789012".into(),
        }
    }

    /// Signs like a client would, with the crate's sending defaults.
    fn signed_headers(body: &[u8], at: SystemTime, secret: &str) -> HeaderMap {
        let identity: Identity =
            Credentials::new("AKIDEXAMPLE0000000", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("cloudtrail")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let req = SignableRequest::new(
            "POST",
            "http://lake.local:8081/",
            [
                ("host", "lake.local:8081"),
                ("content-type", "application/x-amz-json-1.1"),
            ]
            .into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let mut headers = HeaderMap::new();
        headers.insert("host", "lake.local:8081".parse().unwrap());
        headers.insert(
            "content-type",
            "application/x-amz-json-1.1".parse().unwrap(),
        );
        for (name, value) in instructions.headers() {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        headers
    }

    fn check(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<Caller, LakeError> {
        verify(
            &Keyring::new([key()]),
            "cloudtrail",
            &Method::POST,
            &"/".parse().unwrap(),
            headers,
            body,
            now,
        )
    }

    #[test]
    fn accepts_a_correct_signature() {
        let now = SystemTime::now();
        let headers = signed_headers(b"{}", now, &key().secret_access_key);
        let caller = check(&headers, b"{}", now).unwrap();
        assert_eq!(caller.account(), "123456789012");
        assert_eq!(caller.region, "us-east-1");
    }

    #[test]
    fn refuses_a_changed_body_a_wrong_secret_and_no_signature() {
        let now = SystemTime::now();
        let headers = signed_headers(b"{}", now, &key().secret_access_key);
        let err = check(&headers, b"{\"a\":1}", now).unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");

        let wrong = signed_headers(b"{}", now, "not-the-secret-at-all-0000");
        assert_eq!(
            check(&wrong, b"{}", now).unwrap_err().code(),
            "InvalidSignatureException"
        );

        let err = check(&HeaderMap::new(), b"{}", now).unwrap_err();
        assert_eq!(err.code(), "MissingAuthenticationTokenException");
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn refuses_a_stale_signature_and_an_unknown_key() {
        let then = SystemTime::now() - Duration::from_secs(16 * 60);
        let headers = signed_headers(b"{}", then, &key().secret_access_key);
        let err = check(&headers, b"{}", SystemTime::now()).unwrap_err();
        assert!(err.client_message().contains("expired"), "{err}");

        let now = SystemTime::now();
        let headers = signed_headers(b"{}", now, &key().secret_access_key);
        let err = verify(
            &Keyring::default(),
            "cloudtrail",
            &Method::POST,
            &"/".parse().unwrap(),
            &headers,
            b"{}",
            now,
        )
        .unwrap_err();
        assert_eq!(err.code(), "UnrecognizedClientException");
    }

    #[test]
    fn refuses_a_signature_for_another_service() {
        let now = SystemTime::now();
        let headers = signed_headers(b"{}", now, &key().secret_access_key);
        let err = verify(
            &Keyring::new([key()]),
            "cloudtrail-data",
            &Method::POST,
            &"/".parse().unwrap(),
            &headers,
            b"{}",
            now,
        )
        .unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
    }
}
