//! The one scope matrix, generated from `Operation::ALL` and `Scope::ALL`: every operation, called
//! with a token carrying exactly one scope, over REST, A2A and MCP (HTTP), is allowed on every
//! protocol exactly when the scope is the operation's, and refused with 403 `insufficient_scope`
//! otherwise. Arguments are each operation's `example()`, the same on every protocol.

use quietbox_runtime::operations::Operation;
use quietbox_runtime::scopes::Scope;
use serde_json::Value;

use crate::surfaces::{self, Auth, example, token};

/// Whether an answer is the scope refusal (403, `insufficient_scope`) rather than anything that
/// got past the scope check (a result, a failed task, a 404 for an unknown sender, ...).
fn denied(protocol: &str, (status, body): &(u16, Value)) -> bool {
    assert_ne!(status, &401, "{protocol}: the token is accepted: {body}");
    let refused = *status == 403;
    if refused {
        assert_eq!(body["code"], "insufficient_scope", "{protocol}: {body}");
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_allowed_on_every_protocol_exactly_with_its_scope() {
    let roomy = [
        ("RATE_LIMIT_READ_BURST", "1000"),
        ("RATE_LIMIT_BURST", "1000"),
    ];
    let (rest, a2a, mcp) = (
        surfaces::rest(&roomy).await,
        surfaces::a2a(&roomy).await,
        surfaces::mcp(&roomy).await,
    );
    // What each protocol offers: everything on REST; the sender view is REST only.
    let skills: Vec<Operation> = quietbox_a2a::a2a::skill_operations().collect();
    let on_json_rpc: Vec<Operation> = Operation::ALL
        .into_iter()
        .filter(|op| *op != Operation::SenderView)
        .collect();
    assert_eq!(skills, on_json_rpc);
    for op in Operation::ALL {
        assert_eq!(
            quietbox_mcp::mcp::tool_name(op).is_some(),
            op != Operation::SenderView,
            "{}",
            op.id()
        );
    }
    let mut checked = 0;
    for scope in Scope::ALL {
        let auth = Auth::Bearer(token(scope.as_str()));
        let session = mcp.mcp_open(&auth).await;
        for op in Operation::ALL {
            let args = example(op);
            let expected_denied = op.scope() != scope;
            let mut outcomes = vec![(
                "rest",
                denied("rest", &rest.rest_call(&auth, op, &args).await),
            )];
            if skills.contains(&op) {
                outcomes.push(("a2a", denied("a2a", &a2a.a2a_call(&auth, op, &args).await)));
            }
            if let Some(answer) = mcp.mcp_call(&auth, &session, op, &args).await {
                outcomes.push(("mcp", denied("mcp", &answer)));
            }
            for (protocol, was_denied) in &outcomes {
                assert_eq!(
                    *was_denied,
                    expected_denied,
                    "{} with scope {} over {protocol}: denied={was_denied}, all: {outcomes:?}",
                    op.id(),
                    scope.as_str()
                );
                checked += 1;
            }
        }
    }
    // 9 operations on REST, 8 on A2A and on MCP, times every scope.
    assert_eq!(checked, (9 + 8 + 8) * Scope::ALL.len());
}
