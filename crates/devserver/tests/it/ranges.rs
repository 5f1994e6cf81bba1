//! Range requests on `/static/` the way RFC 9110 wants them: a suffix longer than the file is
//! the whole file, ranges the server does not take (several ranges, other units, bad syntax)
//! are ignored (200 with the whole file), and `If-Range` that does not match the current
//! version gets the whole file.

use crate::support::*;

fn demo() -> Server {
    // The demo payload: the 36-byte test vector at static/update.gz.
    Server::start(&[])
}

#[test]
fn suffix_longer_than_the_file_is_the_whole_file() {
    let s = demo();
    let r = get_with(&s.url("/static/update.gz"), &[("Range", "bytes=-100")]);
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.header("content-range"), Some("bytes 0-35/36"));
    assert_eq!(r.body, VECTOR);
    let r = get_with(&s.url("/static/update.gz"), &[("Range", "bytes=-10")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &VECTOR[26..]);
}

#[test]
fn ranges_not_taken_are_ignored() {
    let s = demo();
    for range in [
        "bytes=0-1,4-5",
        "bytes=0-1, -3",
        "items=0-5",
        "bytes=5-2",
        "bytes=abc",
        "bytes=",
        "bytes=--1",
    ] {
        let r = get_with(&s.url("/static/update.gz"), &[("Range", range)]);
        assert_eq!(r.status, 200, "{range}: {}", r.text());
        assert_eq!(r.body, VECTOR, "{range}");
    }
    // A range starting past the end stays unsatisfiable.
    let r = get_with(&s.url("/static/update.gz"), &[("Range", "bytes=100-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */36"));
}

#[test]
fn if_range_decides_between_part_and_whole() {
    let s = demo();
    let url = s.url("/static/update.gz");
    let full = s.get("/static/update.gz");
    let etag = full.header("etag").unwrap().to_string();
    let modified = full.header("last-modified").unwrap().to_string();

    for validator in [etag.as_str(), modified.as_str()] {
        let r = get_with(&url, &[("Range", "bytes=0-9"), ("If-Range", validator)]);
        assert_eq!(r.status, 206, "If-Range {validator}");
        assert_eq!(r.body, &VECTOR[..10]);
    }
    for stale in [
        "\"0-0\"",
        &format!("W/{etag}"),
        "Mon, 01 Jan 2001 00:00:00 GMT",
        "not a validator",
    ] {
        let r = get_with(&url, &[("Range", "bytes=0-9"), ("If-Range", stale)]);
        assert_eq!(r.status, 200, "If-Range {stale}");
        assert_eq!(r.body, VECTOR, "If-Range {stale}");
    }
}
