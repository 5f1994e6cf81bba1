# cibox's own support module for the Arvados Python SDK test suite.
#
# The SDK's test files (shipped in the arvados-python-client sdist) import a
# helper module named `arvados_testutil` that the sdist does not contain.  This
# is cibox's implementation of the names those tests use, written from how the
# tests call them; scripts/sdk-suite copies it next to the test files.
"""Test helpers for the Arvados Python SDK test files: fake HTTP and curl
responses, an API client mock for Keep services, temporary-directory and
stream helpers, and a disk block cache fixture."""

import contextlib
import copy
import hashlib
import http.client
import io
import os
import queue
import shutil
import sys
import tempfile
import unittest
from unittest import mock

import httplib2
import pycurl

import arvados
import arvados.errors
import arvados.keep

# Text and byte buffers, under the names the test files use.
StringIO = io.StringIO
BytesIO = io.BytesIO

# An address in 100::/64, the IPv6 discard prefix: connections to it never
# succeed, so a client pointed at it fails without reaching anything real.
TEST_HOST = '100::'

# Patch time.sleep to return at once (retry back-off in tests).  Usable as a
# decorator or a context manager.
skip_sleep = mock.patch('time.sleep', lambda *args, **kwargs: None)


def queue_with(items):
    """A callable returning the given items one per call, in order.

    All items are taken up front (an iterator is drained now), and the
    callable is safe to call from several threads; once the items are used
    up it raises queue.Empty.  Meant as a mock's side_effect.
    """
    pending = queue.Queue()
    for item in items:
        pending.put(item)

    def next_item(*args, **kwargs):
        return pending.get(block=False)
    return next_item


def fake_httplib2_response(code, **headers):
    """An httplib2.Response with status `code` and the given headers."""
    fields = dict(headers)
    fields['status'] = str(code)
    fields['reason'] = http.client.responses.get(code, 'Unknown Response')
    return httplib2.Response(fields)


def mock_responses(body, *codes, **headers):
    """Patch httplib2.Http.request to answer each call with the next code."""
    answers = [(fake_httplib2_response(code, **headers), body) for code in codes]
    return mock.patch('httplib2.Http.request', side_effect=queue_with(answers))


def mock_api_responses(api_client, body, codes, headers={}, method='request'):
    """Patch one API client's HTTP object to answer with `codes` in turn.

    `method` names the attribute of api_client._http to patch: 'request'
    (the default) or e.g. 'orig_http_request', the SDK's wrapped original,
    so that the SDK's own retry wrapper still runs.
    """
    answers = [(fake_httplib2_response(code, **headers), body) for code in codes]
    return mock.patch.object(api_client._http, method,
                             side_effect=queue_with(answers))


def str_keep_locator(data):
    """The Keep locator (md5+size) of a str or bytes block."""
    if isinstance(data, str):
        data = data.encode()
    return '{}+{}'.format(hashlib.md5(data).hexdigest(), len(data))


def binary_compare(left, right):
    """True when two bytes-like values (bytes, memoryview, mmap) hold the same bytes."""
    def as_bytes(value):
        if isinstance(value, str):
            return value.encode()
        return bytes(value)
    return as_bytes(left) == as_bytes(right)


@contextlib.contextmanager
def redirected_streams(stdout=None, stderr=None):
    """Swap sys.stdout/sys.stderr for the duration of the block.

    Each argument may be a stream object or a class (such as StringIO) to
    make one from; None leaves that stream alone.  Yields (stdout, stderr) as
    they are inside the block.
    """
    def opened(stream):
        if isinstance(stream, type):
            return stream()
        return stream

    saved = (sys.stdout, sys.stderr)
    new_out = opened(stdout) if stdout is not None else sys.stdout
    new_err = opened(stderr) if stderr is not None else sys.stderr
    sys.stdout, sys.stderr = new_out, new_err
    try:
        yield (new_out, new_err)
    finally:
        sys.stdout, sys.stderr = saved


class FakeCurl(object):
    """A stand-in for pycurl.Curl that answers perform() with a canned response.

    `code` is the HTTP status (or an exception to raise from perform()),
    `body` the response body (str, bytes, None, a bool for "no body", or an
    exception to raise), `headers` the response headers.
    """

    @classmethod
    def make(cls, code, body='', headers={}):
        # A Mock wrapping the fake, so tests can inspect calls on it too.
        return mock.Mock(spec=cls, wraps=cls(code, body, headers))

    def __init__(self, code=200, body='', headers={}):
        self._options = {}
        self._write_body = None
        self._on_header = None
        self._status = code
        self._canned_body = body
        self._canned_headers = dict(headers)

    def getopt(self, opt):
        return self._options.get(str(opt))

    def setopt(self, opt, val):
        self._options[str(opt)] = val
        if opt == pycurl.WRITEFUNCTION:
            self._write_body = val
        elif opt == pycurl.HEADERFUNCTION:
            self._on_header = val

    def perform(self):
        if isinstance(self._status, BaseException) or (
                isinstance(self._status, type) and
                issubclass(self._status, BaseException)):
            raise self._status
        if isinstance(self._canned_body, BaseException):
            raise self._canned_body
        if self.getopt(pycurl.URL) is None:
            raise ValueError('FakeCurl: perform() without a URL')
        if self._write_body is None:
            raise ValueError('FakeCurl: perform() without a WRITEFUNCTION')
        if self._on_header is not None:
            self._on_header('HTTP/1.1 {} Status'.format(self._status))
            for name, value in self._canned_headers.items():
                self._on_header('{}: {}'.format(name, value))
        body = self._canned_body
        if body is None or isinstance(body, bool):
            return
        if isinstance(body, str):
            body = body.encode()
        self._write_body(body)

    def close(self):
        pass

    def reset(self):
        # Raising keeps a fake out of the SDK's pool of reusable curl handles.
        raise RuntimeError('FakeCurl is not reusable')

    def getinfo(self, opt):
        if opt == pycurl.RESPONSE_CODE:
            return self._status
        raise NotImplementedError('FakeCurl.getinfo({!r})'.format(opt))


def mock_keep_responses(body, *codes, **headers):
    """Patch pycurl.Curl so each new handle gives the next canned response.

    Either `body` is one body for every code in `codes`, or `body` and each
    of `codes` are (body, code) pairs.  A body may be an exception, raised by
    perform().  The patcher's mock has `.responses`, the fakes in order.
    """
    if isinstance(body, tuple):
        pairs = [body] + list(codes)
    else:
        pairs = [(body, code) for code in codes]
    responses = [FakeCurl.make(code=code, body=b, headers=headers)
                 for b, code in pairs]
    curl_class = mock.MagicMock()
    curl_class.side_effect = queue_with(responses)
    curl_class.responses = responses
    return mock.patch('pycurl.Curl', curl_class)


class MockStreamReader(object):
    """A minimal stream reader over in-memory data."""

    def __init__(self, name='.', *data):
        self._name = name
        self._data = b''.join(d.encode() if isinstance(d, str) else d for d in data)
        self._data_locators = [str_keep_locator(d) for d in data]
        self.num_retries = 0

    def name(self):
        return self._name

    def readfrom(self, start, size, num_retries=None):
        return self._data[start:start + size]


class ApiClientMock(object):
    """Mixin making MagicMock API clients whose keep_services().accessible()
    lists fake Keep services."""

    # What a mock client's config() answers: a cluster whose only storage
    # class is the default one, as a test cluster has.  Tests that need
    # another configuration set config.return_value themselves.
    MOCK_CLUSTER_CONFIG = {
        'StorageClasses': {'default': {'Default': True}},
    }

    def api_client_mock(self):
        client = mock.MagicMock(name='api_client_mock')
        client.config.return_value = copy.deepcopy(self.MOCK_CLUSTER_CONFIG)
        return client

    def mock_keep_services(self, api_mock=None, status=200, count=12,
                           service_type='disk',
                           service_host=None,
                           service_port=None,
                           service_ssl_flag=False,
                           additional_services=[],
                           read_only=False):
        if api_mock is None:
            api_mock = self.api_client_mock()
        services = []
        for index in range(count):
            services.append({
                'uuid': 'zzzzz-bi6l4-{:015x}'.format(index),
                'owner_uuid': 'zzzzz-tpzed-000000000000000',
                'service_host': service_host or 'keep0x{:x}'.format(index),
                'service_port': service_port or 65535 - index,
                'service_ssl_flag': service_ssl_flag,
                'service_type': service_type,
                'read_only': read_only,
            })
        services.extend(additional_services)
        body = {'items_available': count, 'items': services}
        self._mock_api_call(api_mock.keep_services().accessible, status, body)
        return api_mock

    def _mock_api_call(self, mock_method, code, body):
        execute = mock_method().execute
        if code == 200:
            execute.return_value = body
        else:
            execute.side_effect = arvados.errors.ApiError(
                fake_httplib2_response(code), b'{}')


class ArvadosBaseTestCase(unittest.TestCase):
    """A TestCase with temporary directories removed after each test."""

    def setUp(self):
        self._tempdirs = []

    def tearDown(self):
        for path in getattr(self, '_tempdirs', []):
            shutil.rmtree(path, ignore_errors=True)

    def make_tmpdir(self):
        if not hasattr(self, '_tempdirs'):
            self._tempdirs = []
        path = tempfile.mkdtemp()
        self._tempdirs.append(path)
        return path

    def data_file(self, filename):
        """Open tests/data/FILENAME.  cibox does not ship Arvados' data files,
        so tests reading them fail here with FileNotFoundError."""
        here = os.path.dirname(os.path.abspath(__file__))
        return open(os.path.join(here, 'data', filename))

    def build_directory_tree(self, tree):
        """Make a temporary directory holding each relative path in `tree`,
        each file's content being its own path."""
        root = self.make_tmpdir()
        for leaf in tree:
            path = os.path.join(root, leaf)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w') as leaf_file:
                leaf_file.write(leaf)
        return root

    def make_test_file(self, text=b'test'):
        """A NamedTemporaryFile holding `text`, flushed (deleted on close)."""
        if isinstance(text, str):
            text = text.encode()
        testfile = tempfile.NamedTemporaryFile()
        testfile.write(text)
        testfile.flush()
        return testfile


class VersionChecker(object):
    """Mixin checking a command's --version output."""

    VERSION_PATTERN = r'\S+ [0-9]+\.[0-9]+\.[0-9]+\S*'

    def assertVersionOutput(self, out, err):
        err_text = err.getvalue()
        out_text = out.getvalue()
        self.assertEqual(err_text, '', 'unexpected stderr from --version')
        self.assertRegex(out_text, self.VERSION_PATTERN)


class DiskCacheBase(object):
    """Mixin (or plain object) making Keep block caches, on disk when asked,
    in a temporary directory that tearDown() removes."""

    disk_cache_dir = None

    def make_block_cache(self, disk_cache):
        if disk_cache:
            self.disk_cache_dir = tempfile.mkdtemp(prefix='cibox-sdk-cache-')
        else:
            self.disk_cache_dir = None
        return arvados.keep.KeepBlockCache(disk_cache=disk_cache,
                                           disk_cache_dir=self.disk_cache_dir)

    def tearDown(self):
        if self.disk_cache_dir:
            shutil.rmtree(self.disk_cache_dir, ignore_errors=True)
            self.disk_cache_dir = None
