//! ApiVersions (key 18): the version ranges the fake implements, and the handshake.
//!
//! A request at a version the fake does not know gets the v0 body with
//! UNSUPPORTED_VERSION, as Kafka answers (its response header is always v0, so a client
//! can read it whatever version it asked with). Kafka 2.4+ lists its ApiVersions range in
//! that answer so the client knows what to retry with (KIP-511); older brokers list
//! nothing, which [`FakeOptions::advertise_only_v0_api_versions`] reproduces.
//!
//! References: KIP-35, KIP-511; Kafka `ApiVersionsResponse.java`, `KafkaApis.handleApiVersionsRequest`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::conn::encode;
use super::FakeOptions;

/// (API key, min, max) of every API the fake answers.
const RANGES: [(ApiKey, i16, i16); 8] = [
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::Fetch, 4, 16),
];

/// What the fake also answers as a replication target ([`FakeOptions::target`]).
const TARGET_RANGES: [(ApiKey, i16, i16); 3] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::CreatePartitions, 0, 3),
];

/// The advertised (min, max) of `api_key`, if the fake answers it.
pub(super) fn range(options: &FakeOptions, api_key: i16) -> Option<(i16, i16)> {
    let target = TARGET_RANGES.iter().filter(|_| options.target);
    let (key, min, max) = RANGES
        .iter()
        .chain(target)
        .copied()
        .find(|(k, _, _)| *k as i16 == api_key)?;
    match key {
        ApiKey::ApiVersions if options.advertise_only_v0_api_versions => Some((0, 0)),
        _ => Some((min, max)),
    }
}

/// True when the fake advertises `api_key` at `version`.
pub(super) fn advertises(options: &FakeOptions, api_key: i16, version: i16) -> bool {
    range(options, api_key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The response body and the version it is encoded at.
pub(super) fn respond(options: &FakeOptions, version: i16) -> Result<(Bytes, i16), String> {
    let list = |keys: &mut dyn Iterator<Item = ApiKey>| -> Vec<ApiVersion> {
        keys.filter_map(|k| {
            let (min, max) = range(options, k as i16)?;
            Some(
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .collect()
    };
    if advertises(options, ApiKey::ApiVersions as i16, version) {
        let all = RANGES.iter().chain(TARGET_RANGES.iter()).map(|r| r.0);
        let response = ApiVersionsResponse::default().with_api_keys(list(&mut all.into_iter()));
        return Ok((encode(response, version)?, version));
    }
    let api_keys = match options.advertise_only_v0_api_versions {
        true => Vec::new(),
        false => list(&mut std::iter::once(ApiKey::ApiVersions)),
    };
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys);
    Ok((encode(response, 0)?, 0))
}
