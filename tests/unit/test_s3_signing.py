"""The S3 client's Signature V4 against AWS's published examples (the S3 API reference,
"Signature Calculations for the Authorization Header", examples GET Object, PUT Object and
GET Bucket (List Objects)), and its key encoding."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from bodywork_bootstrap import s3

EXAMPLE = s3.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
HOST = "examplebucket.s3.amazonaws.com"
WHEN = dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc)
SCOPE = "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"


def authorization(method, path, query, headers, payload_hash):
    signed = s3.sign(method, HOST, path, query, headers, payload_hash, EXAMPLE, "us-east-1", WHEN)
    return signed["Authorization"]


def test_get_object_example():
    got = authorization("GET", "/test.txt", {}, {"Range": "bytes=0-9"}, s3.EMPTY_SHA256)
    assert got == (
        f"AWS4-HMAC-SHA256 {SCOPE}, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_put_object_example_with_an_encoded_key():
    body = b"Welcome to Amazon S3."
    payload = hashlib.sha256(body).hexdigest()
    assert payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    path = "/" + s3.uri_encode("test$file.text", keep_slash=True)
    assert path == "/test%24file.text"
    headers = {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"}
    got = authorization("PUT", path, {}, headers, payload)
    assert "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class" in got
    assert got.endswith(
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_list_objects_example_signs_the_query():
    got = authorization("GET", "/", {"max-keys": "2", "prefix": "J"}, {}, s3.EMPTY_SHA256)
    assert got.endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_a_session_token_is_signed_and_sent():
    temporary = s3.Credentials(EXAMPLE.access_key, EXAMPLE.secret_key, "token-xyz")
    signed = s3.sign("GET", HOST, "/k", {}, {}, s3.EMPTY_SHA256, temporary, "us-east-1", WHEN)
    assert signed["X-Amz-Security-Token"] == "token-xyz"
    assert "x-amz-security-token" in signed["Authorization"]
    assert "token-xyz" not in signed["Authorization"]


@pytest.mark.parametrize(
    ("key", "keep_slash", "encoded"),
    [
        ("a b/c+d.txt", True, "a%20b/c%2Bd.txt"),
        ("100%/x", True, "100%25/x"),
        ("modèle/ü.pkl", True, "mod%C3%A8le/%C3%BC.pkl"),
        ("a/b", False, "a%2Fb"),
        ("A-z_0.9~", False, "A-z_0.9~"),
        ("=&?#*", False, "%3D%26%3F%23%2A"),
    ],
)
def test_keys_are_encoded_once_the_way_s3_expects(key, keep_slash, encoded):
    assert s3.uri_encode(key, keep_slash=keep_slash) == encoded


def test_canonical_query_is_sorted_and_encoded():
    query = {"prefix": "p/a b", "list-type": "2", "continuation-token": "x+y="}
    assert s3.canonical_query(query) == ("continuation-token=x%2By%3D&list-type=2&prefix=p%2Fa%20b")


def test_the_secret_never_appears_in_the_credentials_repr():
    assert "EXAMPLEKEY" not in repr(EXAMPLE)
    assert EXAMPLE.scrub("oops wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == "oops ***"


def test_part_sizes_stay_within_ten_thousand_parts():
    assert s3.part_size_for(100 * s3.MiB) == s3.PART_SIZE
    huge = 5 * 1024**4  # 5 TiB: S3's largest object
    size = s3.part_size_for(huge)
    assert -(-huge // size) <= s3.MAX_PARTS and size % s3.MiB == 0


def test_addressing_path_style_for_endpoints_virtual_hosted_for_aws():
    custom = s3.S3Client("bkt", EXAMPLE, "http://127.0.0.1:9000/")
    assert (custom.netloc, custom._url_path("a b")) == ("127.0.0.1:9000", "/bkt/a%20b")
    aws = s3.S3Client("bkt", EXAMPLE, region="eu-west-1")
    assert (aws.netloc, aws._url_path("k")) == ("bkt.s3.eu-west-1.amazonaws.com", "/k")
    dotted = s3.S3Client("my.bkt", EXAMPLE, region="eu-west-1")
    assert (dotted.netloc, dotted._url_path("k")) == ("s3.eu-west-1.amazonaws.com", "/my.bkt/k")
