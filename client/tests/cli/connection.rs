//! A daemon that goes away mid-apply: the client says so and what to look at.

use super::*;

/// A TCP proxy to `upstream` on a port of its own; dropping the returned handle's tasks
/// (abort) closes every connection through it at once, as a daemon that dies does.
async fn proxy(upstream: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            connections.spawn(async move {
                let host = upstream.trim_start_matches("http://");
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(host).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

/// A daemon that goes away mid-stream (every connection to it closed at once, as when it
/// is killed) is one sentence: the connection was lost, and how to look at the rollout;
/// never a claim that it goes on, which the client cannot know (issue 24, item 11).
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_says_so_and_how_to_look() {
    let d = start().await;
    let (addr, cut) = proxy(d.addr.clone()).await;
    let child = common::paused_apply(&addr).await;
    cut.abort();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client noticed within a minute")
        .unwrap();
    let id = common::assert_lost_connection(&out, &addr);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("BrokenPipe") && !stderr.contains("transport error"),
        "{stderr}"
    );
    // Here the daemon still runs it (a killed one would have left it interrupted): what the
    // client said names the command that tells which.
    let out = avocet(&[
        "rollouts", "get", &id, "--addr", &d.addr, "--output", "json",
    ])
    .await;
    assert!(stdout(&out).contains("running"), "{}", stdout(&out));
    let _ = d.stop.send(());
}

/// A daemon shutting down under an attached `apply` (its rollout left interrupted) is no
/// success: the stream ends with the daemon's reason, not as if the rollout had ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_shutting_down_mid_apply_is_no_success() {
    let Daemon {
        addr,
        stop,
        dir: _dir,
    } = start().await;
    let child = common::paused_apply(&addr).await;
    let _ = stop.send(());
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the client noticed within a minute")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // Not 0, as if it had succeeded: 3, the daemon ended the call.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr.contains("the daemon is shutting down"), "{stderr}");
    // And it says how to go on: the rollout stopped with the daemon, resume it.
    assert!(stderr.contains("avocet rollouts resume "), "{stderr}");
}
