//! The control API's door, before any request is read: with `--api-token`
//! set, every request must carry `Authorization: Bearer <token>`. The token
//! is compared in constant time (over SHA-256 digests, so that not even its
//! length shows in the timing) and never logged.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::reply::ApiError;
use crate::config::Secret;

/// Whether `headers` carry `token` as a bearer token; the refusal otherwise.
pub fn check_bearer(headers: &HeaderMap, token: &Secret) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("this API needs Authorization: Bearer <token>", "Bearer"));
    };
    let wrong = || ApiError::unauthorized("the bearer token is not the API's token", r#"Bearer error="invalid_token""#);
    let value = value.as_bytes();
    let (scheme, given) = value.split_at(value.iter().position(|&b| b == b' ').ok_or_else(wrong)?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(wrong());
    }
    if same_secret(given.trim_ascii(), token.expose().as_bytes()) {
        Ok(())
    } else {
        Err(wrong())
    }
}

/// `given == expected`, in a time that depends on neither.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let (given, expected) = (Sha256::digest(given), Sha256::digest(expected));
    given.as_slice().ct_eq(expected.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(same_secret(b"", b""));
        for other in [&b"s3creT"[..], b"s3cre", b"s3cret ", b"", b"S3CRET"] {
            assert!(!same_secret(other, b"s3cret"), "{other:?}");
        }
    }

    #[test]
    fn only_the_bearer_token_opens() {
        let token = Secret::new("s3cret".to_string());
        for good in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "] {
            assert_eq!(check_bearer(&headers(Some(good)), &token), Ok(()), "{good}");
        }
        let missing = check_bearer(&headers(None), &token).unwrap_err();
        assert_eq!(
            (missing.status, missing.code, missing.challenge),
            (StatusCode::UNAUTHORIZED, "unauthorized", Some("Bearer"))
        );
        for bad in ["Bearer wrong", "Bearer", "Bearer ", "Basic s3cret", "s3cret", "Bearer s3cret2", "Bearers3cret"] {
            let error = check_bearer(&headers(Some(bad)), &token).unwrap_err();
            assert_eq!(error.status, StatusCode::UNAUTHORIZED, "{bad}");
            assert!(error.challenge.unwrap().starts_with("Bearer"));
            assert!(!error.detail.contains("s3cret"), "the token never shows");
        }
    }
}
