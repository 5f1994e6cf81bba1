#!/usr/bin/env python3
"""cibox's own stand-ins for the files the Arvados SDK tests read from tests/data/.

The sdist of arvados-python-client does not ship tests/data/, and no package registry carries
it. The tests that read it only need files of the right form, so this writes files of cibox's
own making in that form:

- `1000G_ref_manifest` and `jlake_manifest`: large collection manifests that are already in
  normal form (streams in name order, files in name order within a stream, each file one
  contiguous range over the stream's blocks, every block used), so normalising one gives it
  back unchanged, which is what `test_normalized_collection` checks.
- `hello-world-ManifestV2.tar` and `hello-world-ManifestV2-OCILayout.tar`: image archives as
  `docker save` writes them (the classic layout, and the OCI layout Docker 25 writes beside
  `manifest.json`), for a `hello-world:latest` image whose config says it was created
  2023-05-02T16:49:27Z, which is what `ImageMetadataTestCase` reads back.

    sdk_data.py DIR     writes the four files into DIR (created when missing)
"""

import hashlib
import io
import json
import os
import sys
import tarfile

BLOCK = 64 << 20


def block_locator(stream, number, size):
    digest = hashlib.md5("{}:{}".format(stream, number).encode()).hexdigest()
    return "{}+{}".format(digest, size)


def normal_manifest(seed, streams, files_per_stream, file_size):
    """A manifest in normal form: for each stream, its blocks, then its files laid one after
    the other over them in name order."""
    lines = []
    names = ["."] + ["./{}_{:03d}".format(seed, n) for n in range(1, streams)]
    for stream in sorted(names):
        total = files_per_stream * file_size
        blocks = []
        left = total
        while left > 0:
            size = min(BLOCK, left)
            blocks.append(block_locator(stream, len(blocks), size))
            left -= size
        files = []
        for n in range(files_per_stream):
            name = "{}_{:05d}.dat".format(seed, n)
            files.append("{}:{}:{}".format(n * file_size, file_size, name))
        lines.append(" ".join([stream] + blocks + files))
    return "\n".join(lines) + "\n"


def tar_add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1683046167
    archive.addfile(info, io.BytesIO(data))


def image_parts():
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as rootfs:
        tar_add(rootfs, "hello", b"#!/bin/sh\necho 'Hello from a stand-in image'\n")
    layer = layer.getvalue()
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-05-02T16:49:27Z",
        "config": {"Cmd": ["/hello"], "Env": ["PATH=/"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_digest]},
        "history": [{"created": "2023-05-02T16:49:27Z", "created_by": "cibox sdk_data.py"}],
    }, sort_keys=True).encode()
    return layer, layer_digest, config, hashlib.sha256(config).hexdigest()


def classic_image(path):
    layer, layer_digest, config, config_digest = image_parts()
    with tarfile.open(path, "w") as archive:
        tar_add(archive, layer_digest + "/layer.tar", layer)
        tar_add(archive, layer_digest + "/VERSION", b"1.0")
        tar_add(archive, config_digest + ".json", config)
        tar_add(archive, "manifest.json", json.dumps([{
            "Config": config_digest + ".json",
            "RepoTags": ["hello-world:latest"],
            "Layers": [layer_digest + "/layer.tar"],
        }]).encode())
        tar_add(archive, "repositories", json.dumps(
            {"hello-world": {"latest": config_digest}}).encode())


def oci_image(path):
    layer, layer_digest, config, config_digest = image_parts()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + layer_digest, "size": len(layer)}],
    }).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    with tarfile.open(path, "w") as archive:
        tar_add(archive, "blobs/sha256/" + layer_digest, layer)
        tar_add(archive, "blobs/sha256/" + config_digest, config)
        tar_add(archive, "blobs/sha256/" + manifest_digest, manifest)
        tar_add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        tar_add(archive, "index.json", json.dumps({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": "sha256:" + manifest_digest, "size": len(manifest),
                           "annotations": {"io.containerd.image.name": "docker.io/library/hello-world:latest",
                                           "org.opencontainers.image.ref.name": "latest"}}],
        }).encode())
        tar_add(archive, "manifest.json", json.dumps([{
            "Config": "blobs/sha256/" + config_digest,
            "RepoTags": ["hello-world:latest"],
            "Layers": ["blobs/sha256/" + layer_digest],
        }]).encode())


def write_all(directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "1000G_ref_manifest"), "w") as out:
        out.write(normal_manifest("ref", streams=24, files_per_stream=40, file_size=9 << 20))
    with open(os.path.join(directory, "jlake_manifest"), "w") as out:
        out.write(normal_manifest("jlake", streams=12, files_per_stream=150, file_size=3 << 20))
    classic_image(os.path.join(directory, "hello-world-ManifestV2.tar"))
    oci_image(os.path.join(directory, "hello-world-ManifestV2-OCILayout.tar"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: sdk_data.py DIR\n")
        sys.exit(2)
    write_all(sys.argv[1])
