//! Which permission each request needs. The match is exhaustive on purpose: a new
//! opcode does not compile until it is placed in this table.

use swarmmq_auth::{Action, Principal};
use swarmmq_protocol::Request;
use swarmmq_types::ErrorCode;

use super::HOW_TO_PASS_A_KEY;
use crate::error::RequestError;

enum Need<'a> {
    Nothing,
    AnyKey,
    Admin(&'static str),
    On(Action, &'a str),
}

fn need(req: &Request) -> Need<'_> {
    match req {
        Request::Health | Request::Authenticate(_) => Need::Nothing,
        Request::Publish(r) => Need::On(Action::Produce, &r.destination),
        Request::Pull(r) => Need::On(Action::Consume, &r.destination),
        Request::Ack(r) => Need::On(Action::Consume, &r.destination),
        Request::Nack(r) => Need::On(Action::Consume, &r.destination),
        Request::ExtendLease(r) => Need::On(Action::Consume, &r.destination),
        Request::JoinGroup(r) => Need::On(Action::Consume, &r.destination),
        Request::Heartbeat(r) => Need::On(Action::Consume, &r.destination),
        Request::LeaveGroup(r) => Need::On(Action::Consume, &r.destination),
        Request::CommitOffsets(r) => Need::On(Action::Consume, &r.destination),
        Request::Seek(r) => Need::On(Action::Consume, &r.destination),
        Request::CreateDestination(_) => Need::Admin("create destinations"),
        Request::DeleteDestination { .. } => Need::Admin("delete destinations"),
        Request::KeysStatus => Need::Admin("read master key status"),
        Request::KeysRotate => Need::Admin("rotate master keys"),
        Request::KeysRetire { .. } => Need::Admin("retire master keys"),
        Request::ListDestinations
        | Request::DescribeDestination { .. }
        | Request::Metadata
        | Request::ClusterStatus
        | Request::ListGroups
        | Request::DescribeGroup(_) => Need::AnyKey,
    }
}

/// Whether `principal` may run `req`. With auth off everything is allowed; with it on,
/// Health and Authenticate need nothing, everything else a principal (else
/// UNAUTHENTICATED) with the right permission (else FORBIDDEN, naming what was missing).
pub(crate) fn authorize(
    req: &Request,
    principal: Option<&Principal>,
    auth_enabled: bool,
) -> Result<(), RequestError> {
    if !auth_enabled {
        return Ok(());
    }
    let need = need(req);
    if matches!(need, Need::Nothing) {
        return Ok(());
    }
    let Some(p) = principal else {
        return Err(RequestError::new(
            ErrorCode::Unauthenticated,
            HOW_TO_PASS_A_KEY,
        ));
    };
    let forbidden = |what: String| {
        Err(RequestError::new(
            ErrorCode::Forbidden,
            format!("API key {:?} ({}) {what}", p.name, p.key_id),
        ))
    };
    match need {
        Need::Nothing | Need::AnyKey => Ok(()),
        Need::Admin(what) if !p.is_admin() => {
            forbidden(format!("may not {what}: that needs the admin permission"))
        }
        Need::Admin(_) => Ok(()),
        Need::On(action, dest) if !p.allows(action, dest) => forbidden(format!(
            "may not {action} {dest:?}: that needs {action}:<pattern> with a pattern matching {dest:?}"
        )),
        Need::On(..) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use swarmmq_protocol::*;

    use super::*;

    fn principal(perms: &[&str]) -> Principal {
        Principal {
            key_id: "0123456789ab".into(),
            name: "svc".into(),
            permissions: perms.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    /// One request of every opcode, on destination `d`.
    fn every_request(d: &str) -> Vec<Request> {
        let s = |x: &str| x.to_string();
        vec![
            Request::Publish(PublishRequest {
                destination: s(d),
                acks: Acks::All,
                partition: None,
                messages: vec![],
            }),
            Request::Pull(PullRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                max_messages: 1,
                max_bytes: 1,
                max_wait_ms: 0,
                partition: None,
                auto_ack: false,
                generation: 0,
            }),
            Request::Ack(AckRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                ranges: vec![],
                generation: 0,
            }),
            Request::Nack(NackRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                ranges: vec![],
                delay_ms: 0,
                generation: 0,
                reason: s(""),
            }),
            Request::CreateDestination(CreateDestinationRequest {
                name: s(d),
                partitions: 1,
                config: DestinationConfig::default(),
            }),
            Request::DeleteDestination { name: s(d) },
            Request::ListDestinations,
            Request::DescribeDestination { name: s(d) },
            Request::Health,
            Request::Metadata,
            Request::JoinGroup(JoinGroupRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                mode: None,
                session_timeout_ms: 1000,
            }),
            Request::Heartbeat(HeartbeatRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                generation: 0,
            }),
            Request::LeaveGroup(LeaveGroupRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
            }),
            Request::CommitOffsets(CommitOffsetsRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                generation: 0,
                offsets: vec![],
            }),
            Request::Seek(SeekRequest {
                destination: s(d),
                group: s("g"),
                partition: None,
                position: SeekPosition::Earliest,
            }),
            Request::ExtendLease(ExtendLeaseRequest {
                destination: s(d),
                group: s("g"),
                consumer_id: s("c"),
                ranges: vec![],
                extend_ms: 1,
            }),
            Request::ListGroups,
            Request::DescribeGroup(DescribeGroupRequest {
                destination: s(d),
                group: s("g"),
            }),
            Request::Authenticate(AuthenticateRequest { api_key: s("k") }),
            Request::KeysStatus,
            Request::KeysRotate,
            Request::KeysRetire { id: 2 },
            Request::ClusterStatus,
        ]
    }

    fn code(r: Result<(), RequestError>) -> Option<ErrorCode> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn every_opcode_is_covered() {
        let ops: Vec<Opcode> = every_request("d").iter().map(Request::opcode).collect();
        assert_eq!(ops, Opcode::ALL.to_vec());
    }

    #[test]
    fn auth_off_allows_everything_without_a_key() {
        for req in every_request("d") {
            assert_eq!(authorize(&req, None, false), Ok(()), "{:?}", req.opcode());
        }
    }

    #[test]
    fn without_a_key_only_health_and_authenticate_pass() {
        for req in every_request("d") {
            let op = req.opcode();
            let got = authorize(&req, None, true);
            if matches!(op, Opcode::Health | Opcode::Authenticate) {
                assert_eq!(got, Ok(()), "{op:?}");
            } else {
                let e = got.unwrap_err();
                assert_eq!(e.code, ErrorCode::Unauthenticated, "{op:?}");
                assert!(e.message.contains("--api-key"), "{}", e.message);
                assert!(e.message.contains("SWARMMQ_API_KEY"), "{}", e.message);
            }
        }
    }

    #[test]
    fn the_permission_table() {
        use ErrorCode::Forbidden as F;
        let producer = principal(&["produce:a.*"]);
        let consumer = principal(&["consume:a.*"]);
        let admin = principal(&["admin"]);
        let nothing = principal(&[]);
        for req in every_request("a.x") {
            let op = req.opcode();
            let (p, c, a, n) = (
                code(authorize(&req, Some(&producer), true)),
                code(authorize(&req, Some(&consumer), true)),
                code(authorize(&req, Some(&admin), true)),
                code(authorize(&req, Some(&nothing), true)),
            );
            let expected = match op {
                Opcode::Publish => (None, Some(F), None, Some(F)),
                Opcode::Pull
                | Opcode::Ack
                | Opcode::Nack
                | Opcode::ExtendLease
                | Opcode::JoinGroup
                | Opcode::Heartbeat
                | Opcode::LeaveGroup
                | Opcode::CommitOffsets
                | Opcode::Seek => (Some(F), None, None, Some(F)),
                Opcode::CreateDestination
                | Opcode::DeleteDestination
                | Opcode::KeysStatus
                | Opcode::KeysRotate
                | Opcode::KeysRetire => (Some(F), Some(F), None, Some(F)),
                Opcode::ListDestinations
                | Opcode::DescribeDestination
                | Opcode::Metadata
                | Opcode::ClusterStatus
                | Opcode::ListGroups
                | Opcode::DescribeGroup
                | Opcode::Health
                | Opcode::Authenticate => (None, None, None, None),
            };
            assert_eq!((p, c, a, n), expected, "{op:?}");
        }
        // Outside the pattern, produce and consume are forbidden too.
        for req in every_request("b.x") {
            let op = req.opcode();
            if matches!(op, Opcode::Publish) {
                assert_eq!(code(authorize(&req, Some(&producer), true)), Some(F));
            }
            if matches!(op, Opcode::Pull | Opcode::Ack | Opcode::Seek) {
                assert_eq!(code(authorize(&req, Some(&consumer), true)), Some(F));
            }
        }
    }

    #[test]
    fn forbidden_names_the_action_and_destination() {
        let producer = principal(&["produce:a.*"]);
        let req = &every_request("b.x")[0];
        let e = authorize(req, Some(&producer), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(
            e.message.contains("may not produce \"b.x\""),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("\"svc\" (0123456789ab)"),
            "{}",
            e.message
        );
        let create = &every_request("t")[4];
        let e = authorize(create, Some(&producer), true).unwrap_err();
        assert!(
            e.message.contains("may not create destinations"),
            "{}",
            e.message
        );
        assert!(e.message.contains("admin"), "{}", e.message);
    }
}
