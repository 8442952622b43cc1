//! ApiVersions negotiation: which version of each API to speak with one broker.
//!
//! kferry asks with ApiVersions v3 (flexible). A broker too old for that answers with
//! UNSUPPORTED_VERSION and its own range in v0 format, and kferry asks again with v0.
//! For each API, kferry then uses the highest version both sides support.
//!
//! References: KIP-35 (ApiVersions), KIP-511 (client software name in v3).

use std::collections::HashMap;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::conn::Connection;
use super::error::WireError;

/// The version range a broker supports for each API key.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl ApiVersions {
    /// Highest version in `min..=max` that the broker supports for `api_key`.
    pub fn pick(&self, api_key: i16, min: i16, max: i16) -> Option<i16> {
        let (bmin, bmax) = *self.ranges.get(&api_key)?;
        let v = max.min(bmax);
        (v >= min.max(bmin)).then_some(v)
    }

    /// The broker's advertised range for `api_key`, if any.
    pub fn range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    fn from_response(response: &ApiVersionsResponse) -> ApiVersions {
        let ranges = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        ApiVersions { ranges }
    }
}

/// Asks the broker which API versions it supports.
pub(super) async fn negotiate(conn: &Connection) -> Result<ApiVersions, WireError> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kferry"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    // A broker that does not know v3 answers in the v0 layout with UNSUPPORTED_VERSION:
    // read the error code (the first field in every version) before decoding the rest.
    let mut body = BytesMut::new();
    request
        .encode(&mut body, 3)
        .map_err(|e| protocol_error(conn, 3, format!("encode: {e}")))?;
    let mut frame = conn.send(ApiVersionsRequest::KEY, 3, vec![body.freeze()]).await?;
    let response =
        if frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == ResponseError::UnsupportedVersion.code() {
            conn.call(&ApiVersionsRequest::default(), 0).await?
        } else {
            ApiVersionsResponse::decode(&mut frame, 3).map_err(|e| protocol_error(conn, 3, format!("decode: {e}")))?
        };
    super::error::check_code(conn.cluster(), response.error_code, || {
        format!("broker {}: ApiVersions", conn.addr())
    })?;
    let versions = ApiVersions::from_response(&response);
    if versions.range(ApiVersionsRequest::KEY).is_none() {
        return Err(protocol_error(conn, 3, "broker advertised no API versions".to_string()));
    }
    Ok(versions)
}

fn protocol_error(conn: &Connection, version: i16, message: String) -> WireError {
    WireError::Protocol {
        cluster: conn.cluster().to_string(),
        addr: conn.addr().to_string(),
        api: "ApiVersions",
        version,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        let mut v = ApiVersions::default();
        v.ranges.insert(1, (4, 12));
        assert_eq!(v.pick(1, 4, 17), Some(12));
        assert_eq!(v.pick(1, 4, 8), Some(8));
        assert_eq!(v.pick(1, 13, 17), None);
        assert_eq!(v.pick(2, 0, 5), None);
    }
}
