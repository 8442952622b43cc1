//! Requests the fake does not serve.
//!
//! InitProducerId, CreateTopics and DescribeConfigs (the other requests kferry sends, to
//! its target) are answered with UNSUPPORTED_VERSION where their responses carry an error
//! code, so a client pointed at the fake by mistake gets a clear error. Anything else (and
//! an advertised API at a version the fake does not advertise) closes the connection, as
//! Kafka does with a request it cannot parse.
//!
//! References: Kafka `network/RequestChannel.scala`, `common/requests/RequestContext.java`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse,
};

use super::conn::{decode, encode};

/// The error response body, or why the connection must close.
pub(super) fn respond(key: ApiKey, version: i16, body: &mut Bytes) -> Result<Bytes, String> {
    let code = ResponseError::UnsupportedVersion.code();
    match key {
        ApiKey::InitProducerId => {
            decode::<InitProducerIdRequest>(body, version)?;
            encode(InitProducerIdResponse::default().with_error_code(code), version)
        }
        ApiKey::CreateTopics => {
            let request: CreateTopicsRequest = decode(body, version)?;
            let topics = request
                .topics
                .into_iter()
                .map(|t| CreatableTopicResult::default().with_name(t.name).with_error_code(code))
                .collect();
            encode(CreateTopicsResponse::default().with_topics(topics), version)
        }
        ApiKey::DescribeConfigs => {
            let request: DescribeConfigsRequest = decode(body, version)?;
            let results = request
                .resources
                .into_iter()
                .map(|r| {
                    DescribeConfigsResult::default()
                        .with_error_code(code)
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name)
                })
                .collect();
            encode(DescribeConfigsResponse::default().with_results(results), version)
        }
        other => Err(format!("{other:?} v{version} is not served by the fake broker")),
    }
}
