//! A request off the wire: protobuf decoding and the conversion to the engine's request
//! never panic.
#![no_main]

use avocet_daemon::engine::{
    ApplyRequest, ListRequest, PlanRequest, ReadRequest, RepairRequest, RollbackRequest,
    StatusRequest,
};
use avocet_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 7 {
        0 => {
            if let Ok(m) = pb::PlanRequest::decode(bytes) {
                let _ = PlanRequest::try_from(m);
            }
        }
        1 => {
            if let Ok(m) = pb::ApplyRequest::decode(bytes) {
                let _ = ApplyRequest::try_from(m);
            }
        }
        2 => {
            if let Ok(m) = pb::RollbackRequest::decode(bytes) {
                let _ = RollbackRequest::try_from(m);
            }
        }
        3 => {
            if let Ok(m) = pb::VerifyRequest::decode(bytes) {
                let _ = ReadRequest::try_from(m);
            }
        }
        4 => {
            if let Ok(m) = pb::StatusRequest::decode(bytes) {
                let _ = StatusRequest::try_from(m);
            }
        }
        5 => {
            if let Ok(m) = pb::RepairRequest::decode(bytes) {
                let _ = RepairRequest::try_from(m);
            }
        }
        _ => {
            if let Ok(m) = pb::ListRolloutsRequest::decode(bytes) {
                let _ = ListRequest::try_from(m);
            }
        }
    }
});
