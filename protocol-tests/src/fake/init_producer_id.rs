//! InitProducerId (key 22), with [`super::FakeOptions::target`]: a new idempotent producer id
//! per request, epoch 0 (the fake does not check sequences).
//!
//! References: KIP-98; Kafka `clients/src/main/resources/common/message/InitProducerIdRequest.json`.

use std::sync::atomic::{AtomicI64, Ordering};

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

static NEXT_PRODUCER_ID: AtomicI64 = AtomicI64::new(1000);

pub(super) fn handle(_request: InitProducerIdRequest) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(NEXT_PRODUCER_ID.fetch_add(1, Ordering::Relaxed)))
        .with_producer_epoch(0)
}
