#!/usr/bin/env python3
@MARKER@
"""Arvados' test-server helper, served by cibox.

Imported as `run_test_server` (the Arvados SDK's tests do `from . import run_test_server`),
it starts and stops cibox's built-in Arvados services for a test run: `run()`, `reset()`,
`stop()` (the API server), `run_keep()` / `stop_keep()`, `run_keep_proxy()` /
`stop_keep_proxy()`, `run_arv_git_httpd()` / `stop_arv_git_httpd()`, `run_nginx()` /
`stop_nginx()`, `run_ws()` (the API server serves the events itself), and the fixtures (`fixture(kind)`, `auth_token(name)`,
`authorize_with(name)`), `get_config()` and `TestCaseWithServers`. Run as a program it is
the launcher's command line: `run_test_server.py start|stop|start_keep|...`.

Every service runs in one run directory: `$CIBOX_RUN_DIR`, else cibox's default
(`$TMPDIR/cibox`). `$CIBOX_ARVADOS_FIXTURES` names an Arvados checkout whose fixture files the
API server and `fixture()` read instead of the built-in set. Functions of Arvados' helper
that cibox does not serve raise `NotServedByCibox` naming themselves.
"""
import atexit
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.request

CIBOX = os.fsdecode(@CIBOX@)


class CiboxError(RuntimeError):
    """A cibox applet this module ran failed; its own message went to standard error."""


class NotServedByCibox(NotImplementedError):
    """A function of Arvados' test helper that cibox does not serve."""


my_api_host = None
_fixtures = {}


def _run_dir_args():
    run_dir = os.environ.get("CIBOX_RUN_DIR")
    return ["--run-dir", run_dir] if run_dir else []


def _fixtures_args():
    checkout = os.environ.get("CIBOX_ARVADOS_FIXTURES")
    return ["--fixtures", checkout] if checkout else []


def _cibox(applet, *args, env=None):
    """Runs `cibox APPLET ARGS`; its standard output. Its standard error (and the started
    servers' log lines) go to ours, so it is never captured: a pipe on it would stay open for
    as long as the servers run."""
    if not (os.path.isfile(CIBOX) and os.access(CIBOX, os.X_OK)):
        raise CiboxError(
            "run_test_server: no executable cibox at %s any more; run 'cibox --install DIR' again"
            % CIBOX
        )
    done = subprocess.run(
        [CIBOX, applet] + list(args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    if done.returncode != 0:
        raise CiboxError(
            "run_test_server: cibox %s failed with exit status %d (its message is above)"
            % (applet, done.returncode)
        )
    return done.stdout.decode("utf-8", "replace")


def _not_served(name):
    def refuse(*args, **kwargs):
        raise NotServedByCibox(
            "run_test_server.%s: cibox does not serve this (see cibox's docs/arvados.md)" % name
        )

    refuse.__name__ = name
    return refuse


def _api_host():
    return os.environ.get("ARVADOS_TEST_API_HOST") or my_api_host


def _post_reset(host, token):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        "https://%s/database/reset" % host,
        data=b"",
        method="POST",
        headers={"Authorization": "Bearer %s" % token},
    )
    with urllib.request.urlopen(request, context=context, timeout=60) as answer:
        answer.read()


def _forget_discovery():
    """Drops the SDK's cached discovery documents: a new server may answer on a new port."""
    try:
        import arvados

        cache = getattr(arvados, "http_cache", None)
        if cache is not None:
            shutil.rmtree(cache("discovery"), ignore_errors=True)
    except Exception:
        pass


def run(leave_running_atexit=False):
    """Starts the API server, or resets the one already running (this module's, or the one
    `ARVADOS_TEST_API_HOST` names), and points `ARVADOS_API_*` at it with the admin token."""
    global my_api_host
    _forget_discovery()
    if _api_host():
        try:
            return reset()
        except Exception:
            if os.environ.get("ARVADOS_TEST_API_HOST"):
                raise
    env = os.environ.copy()
    for name in ("ARVADOS_TEST_API_HOST", "ARVADOS_API_HOST", "ARVADOS_API_HOST_INSECURE", "ARVADOS_API_TOKEN"):
        env.pop(name, None)
    my_api_host = _cibox("start_api", *(_run_dir_args() + _fixtures_args()), env=env).strip()
    if not leave_running_atexit:
        atexit.register(stop, True)
    reset()
    return my_api_host


def reset():
    """Puts the API server back to its fixtures and `ARVADOS_API_*` back to it, with the admin
    token."""
    host = _api_host()
    if not host:
        raise CiboxError("run_test_server.reset: no API server is running (call run() first)")
    token = auth_token("admin")
    _post_reset(host, token)
    os.environ["ARVADOS_API_HOST_INSECURE"] = "true"
    os.environ["ARVADOS_API_HOST"] = host
    os.environ["ARVADOS_API_TOKEN"] = token


def stop(force=False):
    """Stops the API server this module started (any in the run directory with `force`)."""
    global my_api_host
    if force or my_api_host is not None:
        _cibox("stop_api", *_run_dir_args())
        my_api_host = None


def run_keep(num_servers=2, blob_signing=False, enforce_permissions=False, **kwargs):
    """Starts `num_servers` keepstores, registered with the API server. `blob_signing` or
    `enforce_permissions`: they refuse unsigned reads, with the cluster's signing key."""
    stop_keep()
    args = ["--num-keep-servers", str(num_servers)]
    if blob_signing or enforce_permissions:
        args.append("--keep-enforce-permissions")
    _cibox("start_keep", *(_run_dir_args() + args))


def stop_keep(num_servers=2):
    _cibox("stop_keep", *_run_dir_args())


def run_keep_proxy(**kwargs):
    """Starts keepproxy in front of the keepstores, registered with the API server as the run's
    proxy; `ARVADOS_KEEP_SERVICES` (and the older `ARVADOS_KEEP_PROXY`) name it."""
    stop_keep_proxy()
    url = _cibox("start_keep_proxy", *_run_dir_args()).strip()
    os.environ["ARVADOS_KEEP_SERVICES"] = url
    os.environ["ARVADOS_KEEP_PROXY"] = url
    return url


def stop_keep_proxy():
    _cibox("stop_keep_proxy", *_run_dir_args())
    for name in ("ARVADOS_KEEP_SERVICES", "ARVADOS_KEEP_PROXY"):
        os.environ.pop(name, None)


def run_arv_git_httpd():
    _cibox("start_arv-git-httpd", *_run_dir_args())


def stop_arv_git_httpd():
    _cibox("stop_arv-git-httpd", *_run_dir_args())


def run_nginx():
    _cibox("start_nginx", *_run_dir_args())


def stop_nginx():
    _cibox("stop_nginx", *_run_dir_args())


def run_ws():
    """The API server serves the websocket events itself (`websocketUrl` in its discovery
    document), so there is nothing more to start: it only has to be running."""
    if not _api_host():
        raise CiboxError("run_test_server.run_ws: no API server is running (call run() first)")


def stop_ws():
    """Nothing to stop: the events go with the API server."""

run_controller = _not_served("run_controller")
stop_controller = _not_served("stop_controller")
run_keep_web = _not_served("run_keep_web")
stop_keep_web = _not_served("stop_keep_web")
run_arvados_dispatch_cloud = _not_served("run_arvados_dispatch_cloud")


def fixture(kind):
    """The fixture records of `kind` (`collections`, `groups`, `users`,
    `api_client_authorizations`, ...), by fixture name."""
    if kind not in _fixtures:
        _fixtures[kind] = json.loads(_cibox("arvados-fixtures", kind, *_fixtures_args()))
    return _fixtures[kind]


def auth_token(token_name):
    """The token of the `api_client_authorizations` fixture `token_name`."""
    return fixture("api_client_authorizations")[token_name]["api_token"]


def authorize_with(token_name):
    """Makes the SDK's settings use the token fixture `token_name` against the API server."""
    import arvados

    arvados.config.settings()["ARVADOS_API_TOKEN"] = auth_token(token_name)
    arvados.config.settings()["ARVADOS_API_HOST"] = os.environ.get("ARVADOS_API_HOST")
    arvados.config.settings()["ARVADOS_API_HOST_INSECURE"] = "true"


def get_config():
    """The test cluster's configuration as the API server exports it, under
    `Clusters.zzzzz` as in a cluster configuration file."""
    host = _api_host()
    if not host:
        raise CiboxError("run_test_server.get_config: no API server is running (call run() first)")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(
        "https://%s/arvados/v1/config" % host, context=context, timeout=60
    ) as answer:
        config = json.loads(answer.read().decode("utf-8"))
    return {"Clusters": {config.get("ClusterID", "zzzzz"): config}}


class TestCaseWithServers(unittest.TestCase):
    """Starts the servers a test class names and stops them afterwards.

    `MAIN_SERVER`, `KEEP_SERVER` and `KEEP_PROXY_SERVER`, when set to a dict, are the keyword
    arguments of `run`, `run_keep` and `run_keep_proxy`. Without a Keep server, `KEEP_LOCAL_STORE`
    names a temporary directory for the SDK's local block store. The environment and the SDK's
    settings are put back afterwards.
    """

    MAIN_SERVER = None
    KEEP_SERVER = None
    KEEP_PROXY_SERVER = None

    @staticmethod
    def _restore_dict(src, dest):
        for key in list(dest.keys()):
            if key not in src:
                del dest[key]
        dest.update(src)

    @classmethod
    def setUpClass(cls):
        import arvados

        cls._orig_environ = os.environ.copy()
        cls._orig_config = arvados.config.settings().copy()
        cls._cleanup_funcs = []
        for name in ("ARVADOS_KEEP_SERVICES", "ARVADOS_KEEP_PROXY", "ARVADOS_EXTERNAL_CLIENT"):
            os.environ.pop(name, None)
        for server_kwargs, start_func, stop_func in (
            (cls.MAIN_SERVER, run, reset),
            (cls.KEEP_SERVER, run_keep, stop_keep),
            (cls.KEEP_PROXY_SERVER, run_keep_proxy, stop_keep_proxy),
        ):
            if server_kwargs is not None:
                start_func(**server_kwargs)
                cls._cleanup_funcs.append(stop_func)
        if cls.KEEP_SERVER is None and cls.KEEP_PROXY_SERVER is None:
            cls.local_store = tempfile.mkdtemp()
            os.environ["KEEP_LOCAL_STORE"] = cls.local_store
            cls._cleanup_funcs.append(lambda: shutil.rmtree(cls.local_store, ignore_errors=True))
        else:
            os.environ.pop("KEEP_LOCAL_STORE", None)
        arvados.config.initialize()

    @classmethod
    def tearDownClass(cls):
        import arvados

        for clean_func in cls._cleanup_funcs:
            clean_func()
        cls._restore_dict(cls._orig_environ, os.environ)
        cls._restore_dict(cls._orig_config, arvados.config.settings())


@EXEC_MAIN@