//! A stand-in for the Hugging Face hub on 127.0.0.1, for the fetch tests: the hub's URL layout
//! (`/api/models/{id}/revision/{rev}`, `/{id}/resolve/{rev}/{file}`), LFS files answered by a
//! redirect carrying `X-Linked-Etag` / `X-Linked-Size` to a "CDN" path on another origin
//! (`localhost` instead of the endpoint's `127.0.0.1`, so the token must not follow) that honours `Range`, git
//! files with their blob id as ETag, an optional token, and faults on demand: a transfer that
//! breaks off after N bytes (once), a sha256 that does not match the bytes served.
//!
//! Shared by crates/models/tests and crates/cli/tests (`#[path]`): std, sha1 and sha2 only.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// One file of a fake repository.
#[derive(Clone)]
pub struct FakeFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Served as an LFS file (redirect, sha256) rather than a git file.
    pub lfs: bool,
    /// Advertise this sha256 (in the API and X-Linked-Etag) instead of the true one.
    pub claimed_sha256: Option<String>,
    /// Break the first full transfer off after this many bytes.
    pub cut_after: Option<usize>,
}

impl FakeFile {
    pub fn git(name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        FakeFile { name: name.into(), bytes: bytes.into(), lfs: false, claimed_sha256: None, cut_after: None }
    }
    pub fn lfs(name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        FakeFile { name: name.into(), bytes: bytes.into(), lfs: true, claimed_sha256: None, cut_after: None }
    }
    fn sha256(&self) -> String {
        self.claimed_sha256.clone().unwrap_or_else(|| hex(&Sha256::digest(&self.bytes)))
    }
    fn git_oid(&self) -> String {
        sha1_smol(&self.bytes)
    }
}

/// A fake repository.
#[derive(Clone)]
pub struct FakeRepo {
    pub id: String,
    pub commit: String,
    pub files: Vec<FakeFile>,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

/// The running server; stops when dropped.
pub struct FakeHub {
    pub endpoint: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

struct State {
    repos: Vec<FakeRepo>,
    token: Option<String>,
    /// Files whose one broken transfer has happened.
    cut_done: Mutex<Vec<String>>,
    port: u16,
}

impl FakeHub {
    /// Serve `repos`; with `token`, every request must carry `Authorization: Bearer <token>`.
    pub fn start(repos: Vec<FakeRepo>, token: Option<&str>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(State { repos, token: token.map(str::to_string), cut_done: Mutex::new(Vec::new()), port });
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: at most ten minutes, then the server stops by itself.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !stop2.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (state, seen) = (state.clone(), seen2.clone());
                        std::thread::spawn(move || {
                            let _ = handle(s, &state, &seen);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeHub { endpoint: format!("http://127.0.0.1:{port}"), seen, stop, port }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.port;
    }
}

fn handle(mut s: TcpStream, st: &State, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mut range, mut auth) = (None, None);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    seen.lock().unwrap().push(Seen { path: target.clone(), range: range.clone(), authorization: auth.clone() });
    let path = target.split('?').next().unwrap_or("").to_string();
    let cdn = path.starts_with("/cdn/");
    // The "CDN" takes no token (as the hub's pre-signed storage URLs).
    if !cdn && let Some(t) = &st.token
        && auth.as_deref() != Some(&format!("Bearer {t}"))
    {
        return respond(&mut s, 401, &[], b"{\"error\":\"Access to this repository is restricted\"}", None);
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((id, rev)) = rest.split_once("/revision/") else { return respond(&mut s, 404, &[], b"", None) };
        let Some(repo) = st.repos.iter().find(|r| r.id == id) else { return respond(&mut s, 404, &[], b"{\"error\":\"Repository not found\"}", None) };
        let rev = rev.replace("%2F", "/");
        if rev != "main" && rev != repo.commit {
            return respond(&mut s, 404, &[], b"{\"error\":\"Revision not found\"}", None);
        }
        let siblings: Vec<String> = repo
            .files
            .iter()
            .map(|f| {
                let lfs = if f.lfs { format!(",\"lfs\":{{\"sha256\":\"{}\",\"size\":{},\"pointerSize\":134}}", f.sha256(), f.bytes.len()) } else { String::new() };
                format!("{{\"rfilename\":\"{}\",\"size\":{},\"blobId\":\"{}\"{lfs}}}", f.name, f.bytes.len(), f.git_oid())
            })
            .collect();
        let body = format!("{{\"id\":\"{}\",\"sha\":\"{}\",\"private\":false,\"siblings\":[{}]}}", repo.id, repo.commit, siblings.join(","));
        return respond(&mut s, 200, &[], body.as_bytes(), None);
    }
    if let Some(rest) = path.strip_prefix("/cdn/") {
        let Some((id, name)) = rest.rsplit_once('/') else { return respond(&mut s, 404, &[], b"", None) };
        let Some(f) = st.repos.iter().find(|r| r.id == id).and_then(|r| r.files.iter().find(|f| f.name == name)) else {
            return respond(&mut s, 404, &[], b"", None);
        };
        let from: usize = range.as_deref().and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse().ok()).unwrap_or(0);
        let key = format!("{id}/{name}");
        let cut = match f.cut_after {
            Some(n) if from == 0 && !st.cut_done.lock().unwrap().contains(&key) => {
                st.cut_done.lock().unwrap().push(key);
                Some(n)
            }
            _ => None,
        };
        if from > 0 {
            if from >= f.bytes.len() {
                return respond(&mut s, 416, &[("Content-Range", format!("bytes */{}", f.bytes.len()))], b"", None);
            }
            let cr = format!("bytes {from}-{}/{}", f.bytes.len() - 1, f.bytes.len());
            return respond(&mut s, 206, &[("Content-Range", cr)], &f.bytes[from..], None);
        }
        return respond(&mut s, 200, &[], &f.bytes, cut);
    }
    // /{owner}/{name}/resolve/{rev}/{file}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() == 5 && parts[2] == "resolve" {
        let id = format!("{}/{}", parts[0], parts[1]);
        let Some(repo) = st.repos.iter().find(|r| r.id == id) else { return respond(&mut s, 404, &[], b"", None) };
        if parts[3] != "main" && parts[3] != repo.commit {
            return respond(&mut s, 404, &[], b"", None);
        }
        let Some(f) = repo.files.iter().find(|f| f.name == parts[4]) else { return respond(&mut s, 404, &[], b"Entry not found", None) };
        let commit = ("X-Repo-Commit", repo.commit.clone());
        if f.lfs {
            let headers = [
                // Another origin (as the hub's storage is): `localhost`, not the endpoint's 127.0.0.1.
                ("Location", format!("http://localhost:{}/cdn/{id}/{}", st.port, f.name)),
                ("X-Linked-Etag", format!("\"{}\"", f.sha256())),
                ("X-Linked-Size", f.bytes.len().to_string()),
                commit,
            ];
            return respond(&mut s, 302, &headers, b"", None);
        }
        return respond(&mut s, 200, &[("ETag", format!("\"{}\"", f.git_oid())), commit], &f.bytes, None);
    }
    respond(&mut s, 404, &[], b"", None)
}

/// Write a response; with `cut`, announce the whole body but send only `cut` bytes of it.
fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8], cut: Option<usize>) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let n = cut.unwrap_or(body.len()).min(body.len());
    s.write_all(&body[..n])?;
    s.flush()?;
    if cut.is_some() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A git blob id: sha1 of `blob <len>\0<content>`.
fn sha1_smol(content: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex(&h.finalize())
}
