# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cibox_global_optspecs
    string join \n engine= list install= force h/help V/version
end

function __fish_cibox_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cibox_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cibox_using_subcommand
    set -l cmd (__fish_cibox_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cibox -n "__fish_cibox_needs_command" -l engine -d 'Container engine for the container applets [env: CIBOX_ENGINE]' -r -f -a "auto\t''
docker\t''
podman\t''"
complete -c cibox -n "__fish_cibox_needs_command" -l install -d 'Create a link named after each applet in DIR, and docker.py as a Python stub running this cibox' -r -f -a "(__fish_complete_directories)"
complete -c cibox -n "__fish_cibox_needs_command" -l list -d 'Print every applet name, one a line'
complete -c cibox -n "__fish_cibox_needs_command" -l force -d 'With --install: replace files that are not cibox links or stubs'
complete -c cibox -n "__fish_cibox_needs_command" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_needs_command" -s V -l version -d 'Print version'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "apiserver" -d 'Arvados-compatible API server for test runs (HTTPS)'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "arv-git-httpd" -d 'Git smart HTTP server with Arvados token checks (arv-git-httpd compatible)'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "arvados-fixtures" -d 'Print the API server\'s fixture records of one kind, by fixture name, as JSON'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "build" -d 'Build an image from a Dockerfile unless it is up to date'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "cc" -d 'Run a compiler in an image on the current directory, as the current user'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "check" -d 'Check whether an image is up to date with its Dockerfile, or recent enough'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "clean" -d 'Remove every labelled container, running or exited'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "fetch" -d 'Pull an image from a registry and tag it with its local name'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "images" -d 'List images with the engine\'s own output and status'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "keepproxy" -d 'Keep proxy in front of a run\'s keepstores (Arvados keepproxy compatible)'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "keepstore" -d 'Keep block storage server (Arvados keepstore compatible)'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "probe" -d 'Tell which container engine works: podman, docker, sudo docker or no'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "run" -d 'Run a container with cleanup on exit; exit status is the command\'s'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "serve" -d 'Devserver: hosts images and payloads, answers Omaha update checks'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "start_api" -d 'Start the Arvados API server for a test run'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "start_arv-git-httpd" -d 'Start the git server for a test run'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "start_keep" -d 'Start Keep storage servers for a test run'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "start_keep_proxy" -d 'Start a Keep proxy for a test run'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "start_nginx" -d 'Start nginx with TLS in front of keepproxy and the git server'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "stop_all" -d 'Stop every service of a test run, in reverse start order'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "stop_api" -d 'Stop the Arvados API server start_api started'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "stop_arv-git-httpd" -d 'Stop the git server start_arv-git-httpd started'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "stop_keep" -d 'Stop the Keep storage servers start_keep started'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "stop_keep_proxy" -d 'Stop the Keep proxy start_keep_proxy started'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "stop_nginx" -d 'Stop the nginx start_nginx started'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "update" -d 'Add an executable with its libraries, or the current user, to an image'
complete -c cibox -n "__fish_cibox_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l listen -d 'Address to listen on' -r
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l pid -d 'Write our pid here, locked while running, removed on exit' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l tls-cert -d 'TLS certificate (PEM)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l tls-key -d 'TLS private key (PEM)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l state -d 'Save the records here on every change (and start from it when it exists)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l blob-signing-key-file -d 'The keepstores\' blob signing key file: manifests are checked and signed with it when it exists' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l fixtures -d 'Start from the fixture files of this Arvados checkout (or its services/api/test/fixtures directory) instead of the built-in fixtures' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l body-timeout -d 'Seconds each piece of a request body may take to arrive; a stalled body gets 408 (a stalled keepstore PUT gives its buffer back)' -r
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l idle-timeout -d 'Seconds a connection may move no byte between requests, or while a client does not read its answer, before it is closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l max-connections -d 'Connections served at once (TLS handshakes included); more are answered 503 and closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l log-format -l log_format -d 'How records are written to stderr: text, or one JSON object a line' -r -f -a "text\t'One line a record: time, level, message and fields'
json\t'One JSON object a line: timestamp, level, target and the record\'s fields'"
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -l header-timeout -d 'Seconds for a whole request head to arrive (over TLS, the handshake first gets as long); slower connections are closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand apiserver" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l address -d 'Address to listen on' -r
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l repo-root -d 'Directory holding the repositories (UUID.git or NAME.git)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l pid -d 'Write our pid here, locked while running, removed on exit' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l git-command -d 'The git program [default: git in PATH]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l header-timeout -d 'Seconds for a whole request head to arrive (over TLS, the handshake first gets as long); slower connections are closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l body-timeout -d 'Seconds each piece of a request body may take to arrive; a stalled body gets 408 (a stalled keepstore PUT gives its buffer back)' -r
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l idle-timeout -d 'Seconds a connection may move no byte between requests, or while a client does not read its answer, before it is closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l max-connections -d 'Connections served at once (TLS handshakes included); more are answered 503 and closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -l log-format -l log_format -d 'How records are written to stderr: text, or one JSON object a line' -r -f -a "text\t'One line a record: time, level, message and fields'
json\t'One JSON object a line: timestamp, level, target and the record\'s fields'"
complete -c cibox -n "__fish_cibox_using_subcommand arv-git-httpd" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand arvados-fixtures" -l fixtures -d 'Read an Arvados checkout\'s fixture files (as `start_api --fixtures DIR` does) instead of the built-in set' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand arvados-fixtures" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand build" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand build" -s t -d 'Image tag' -r
complete -c cibox -n "__fish_cibox_using_subcommand build" -s f -d 'Dockerfile' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand build" -s e -l include-executable -d 'Copy this executable (at its binfmt_misc interpreter path) and every library it needs' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand build" -l extra-files -d 'Files copied into the build context (for ADD/COPY in the Dockerfile)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand build" -s r -l registry -d 'Registry to take cached layers and `FROM qemu/` bases from' -r
complete -c cibox -n "__fish_cibox_using_subcommand build" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand build" -l skip-binfmt -d 'Don\'t look BIN up in binfmt_misc: put it at the path given (a relative one under /)'
complete -c cibox -n "__fish_cibox_using_subcommand build" -s u -l add-current-user -d 'Add the current user (uid and name) to the image\'s passwd'
complete -c cibox -n "__fish_cibox_using_subcommand build" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand cc" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand cc" -s i -l image -d 'Image the compiler lives in' -r
complete -c cibox -n "__fish_cibox_using_subcommand cc" -l cc -d 'Compiler to call' -r
complete -c cibox -n "__fish_cibox_using_subcommand cc" -s s -l source-path -d 'Paths mounted read-only at the same place (sources outside the current directory)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand cc" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand cc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand check" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand check" -l checktype -d 'What to check' -r -f -a "checksum\t'The image\'s checksum label matches the Dockerfile'
age\t'The image is younger than --olderthan minutes'"
complete -c cibox -n "__fish_cibox_using_subcommand check" -l olderthan -d 'Age limit in minutes (age check): 0 to 4294967295' -r
complete -c cibox -n "__fish_cibox_using_subcommand check" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand clean" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand clean" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand clean" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand fetch" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand fetch" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand fetch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand images" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand images" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand images" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l listen -d 'Address to listen on' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l pid -d 'Write our pid here, locked while running, removed on exit' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l timeout -d 'Seconds one request to a keepstore may take' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l no-get -d 'Refuse GET and HEAD' -r -f -a "true\t''
false\t''"
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l no-put -d 'Refuse PUT and POST' -r -f -a "true\t''
false\t''"
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l default-replicas -d 'Copies to write when the client sends no X-Keep-Desired-Replicas' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l max-buffers -d '(cibox) How many writes may hold a block (up to 64 MiB) in memory at once; further ones wait, their bodies unread' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l run-dir -d '(cibox) Where start_keep recorded its keepstores [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l header-timeout -d 'Seconds for a whole request head to arrive (over TLS, the handshake first gets as long); slower connections are closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l body-timeout -d 'Seconds each piece of a request body may take to arrive; a stalled body gets 408 (a stalled keepstore PUT gives its buffer back)' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l idle-timeout -d 'Seconds a connection may move no byte between requests, or while a client does not read its answer, before it is closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l max-connections -d 'Connections served at once (TLS handshakes included); more are answered 503 and closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -l log-format -l log_format -d 'How records are written to stderr: text, or one JSON object a line' -r -f -a "text\t'One line a record: time, level, message and fields'
json\t'One JSON object a line: timestamp, level, target and the record\'s fields'"
complete -c cibox -n "__fish_cibox_using_subcommand keepproxy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l volume -d 'A volume directory; repeat for several (PUT uses the first writable one with room)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l volumes -d 'Volume directories, comma separated (older spelling of -volume)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l listen -d 'Address to listen on' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l pid -d 'Write our pid here, locked while running, removed on exit' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l permission-key-file -l blob-signing-key-file -d 'File holding the permission signing key' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l enforce-permissions -d 'Refuse GETs without a valid permission signature' -r -f -a "true\t''
false\t''"
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l permission-ttl -l blob-signature-ttl -d 'Lifetime of permission signatures, in seconds' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l data-manager-token-file -d 'File holding the token that may index, delete, trash and untrash' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l management-token -d 'Token required by /_health/ping (open when not given)' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l never-delete -d 'Refuse DELETE and ignore trash lists' -r -f -a "true\t''
false\t''"
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l readonly -d 'No writes, deletes or touches on the volumes that follow' -r -f -a "true\t''
false\t''"
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l serialize -d 'One request at a time on the volumes that follow' -r -f -a "true\t''
false\t''"
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l max-buffers -d 'Block transfers served at once (more wait their turn); bounds memory' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l put-min-rate -d '(cibox) Bytes per second a PUT body must average once its grace is over; a slower one is answered 408 and gives its buffer back' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l put-rate-grace -d '(cibox) Seconds a PUT body may take before the minimum rate applies' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l trash-lifetime -d 'Seconds a deleted block stays in trash (0: delete at once)' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l trash-check-interval -d 'Seconds between runs that empty expired trash' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l min-free-space -d '(cibox) A volume with less free space than this is full' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l header-timeout -d 'Seconds for a whole request head to arrive (over TLS, the handshake first gets as long); slower connections are closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l body-timeout -d 'Seconds each piece of a request body may take to arrive; a stalled body gets 408 (a stalled keepstore PUT gives its buffer back)' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l idle-timeout -d 'Seconds a connection may move no byte between requests, or while a client does not read its answer, before it is closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l max-connections -d 'Connections served at once (TLS handshakes included); more are answered 503 and closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -l log-format -l log_format -d 'How records are written to stderr: text, or one JSON object a line' -r -f -a "text\t'One line a record: time, level, message and fields'
json\t'One JSON object a line: timestamp, level, target and the record\'s fields'"
complete -c cibox -n "__fish_cibox_using_subcommand keepstore" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand probe" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand probe" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand probe" -l json -d 'Print the detail as JSON: engine command, version, rootless, buildkit, failed attempts'
complete -c cibox -n "__fish_cibox_using_subcommand probe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand run" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand run" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand run" -l keep -d 'Don\'t remove the container when cibox is stopped'
complete -c cibox -n "__fish_cibox_using_subcommand run" -l run-as-current-user -d 'Run the container as the calling user\'s uid and gid'
complete -c cibox -n "__fish_cibox_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l port -d 'Port to listen on (0: any free port)' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l host -d 'Address to listen on [default: :: dual-stack, or 0.0.0.0 without IPv6]' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l data_dir -l data-dir -d 'Writable directory where static/ lives [default: the current directory]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l archive_dir -l archive-dir -d 'Serve archived builds only: static/archive links here and it is the static root' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l payload -d 'Serve the update.gz of this directory (or this payload file), copied into static/' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l image -d 'Force updates to this image (payload generated with cros_generate_update_payload)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l src_image -l src-image -d 'Source image for a delta payload' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l board -d 'Default board; with it, the latest image of the board is served (see --images_dir)' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l private_key -l private-key -d 'Private key (PEM) to sign generated payloads with' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -s u -l urlbase -d 'Base URL of the payloads, other than this server\'s /static' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l proxy_port -l proxy-port -d 'Port the clients should connect to (replaces the port in payload URLs)' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l factory_config -l factory-config -d 'Factory-floor config: Python `config = [...]` literal or JSON (never executed)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l client_prefix -l client-prefix -d 'Deprecated, accepted and ignored' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l log-dir -l log_dir -d 'Directory for devserver_access.log and devserver_error.log [default: data dir]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l builder -d 'Builder command for /build; {board} and {pkg} are replaced' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l images_dir -l images-dir -d 'Where --board finds images (BOARD/VERSION/chromiumos_image.bin) [default: $CROS_WORKON_SRCROOT/src/build/images, else ~/trunk/src/build/images]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l log-format -l log_format -d 'How records are written to stderr: text, or one JSON object a line' -r -f -a "text\t'One line a record: time, level, message and fields'
json\t'One JSON object a line: timestamp, level, target and the record\'s fields'"
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l header-timeout -d 'Seconds for a whole request head to arrive (over TLS, the handshake first gets as long); slower connections are closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l body-timeout -d 'Seconds each piece of a request body may take to arrive; a stalled body gets 408 (a stalled keepstore PUT gives its buffer back)' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l idle-timeout -d 'Seconds a connection may move no byte between requests, or while a client does not read its answer, before it is closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l max-connections -d 'Connections served at once (TLS handshakes included); more are answered 503 and closed' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l download-timeout -d 'Seconds one artifact of /download may take (HTTP, or gsutil stat + cp)' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l download-max-bytes -d 'Largest artifact /download accepts, downloaded or unpacked, in bytes [16 GiB]' -r
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l payload-metadata -l payload_metadata -l update-metadata -d 'Directory of nebraska-style payload metadata (*.json beside each payload, per appid): DLC, miniOS and platform payloads, full and delta, served under /payloads/' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l install-metadata -l install_metadata -d 'Payload metadata for installs, as nebraska keeps them apart (served under /install-payloads/) [default: --payload-metadata serves installs too]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l static_dir -l static-dir -d 'The static directory itself [default: DATA/static]; also the data dir when --data_dir is not given' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l pidfile -d 'Write our pid here once listening (removed on exit)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l portfile -d 'Write the bound port here once listening (removed on exit; with --port 0)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l logfile -d 'Write the access and error logs to this one file' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l omaha-flavor -l omaha_flavor -d 'Response format: auto (decided from each request), chromeos or coreos' -r -f -a "auto\t'Decided from each request'
chromeos\t'ChromiumOS update_engine'
coreos\t'CoreOS and Flatcar (go-omaha, Flatcar\'s update_engine)'"
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l clear_cache -l clear-cache -d 'Empty the payload cache (static/cache) at start-up'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l exit -d 'Do the start-up work (cache, pre-generation, links), then exit without serving'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l for_vm -l for-vm -d 'The update is for a VM image (no kernel patching; uses the qemu image with --board)'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -s p -l pregenerate_update -l pregenerate-update -d 'Pre-generate the update payload at start-up'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -s t -d 'Use the test image of --board'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l critical_update -l critical-update -d 'Present the update as critical (deadline="now")'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l validate_factory_config -l validate-factory-config -d 'Check every image and checksum of --factory_config, then exit'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l production -d 'Production mode: access lines go to the log file only, not to stderr'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -s l -l logging -d 'Keep a log of update requests per host (/api/hostlog)'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -l no-demo -l no_demo -d 'Don\'t write the demo payload when nothing is configured'
complete -c cibox -n "__fish_cibox_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cibox -n "__fish_cibox_using_subcommand start_api" -l auth -d 'Print export lines for this token fixture (admin, active, spectator, ...)' -r
complete -c cibox -n "__fish_cibox_using_subcommand start_api" -l fixtures -d 'Start from the fixture files of this Arvados checkout (its services/api/test/fixtures/*.yml) instead of the built-in fixtures' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_api" -l run-dir -d 'Directory for the pid, port, state and certificate files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_api" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand start_arv-git-httpd" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_arv-git-httpd" -l json -d 'Print a JSON description'
complete -c cibox -n "__fish_cibox_using_subcommand start_arv-git-httpd" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l num-keep-servers -d 'How many servers to start' -r
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l blob-signing-key -d 'Sign locators with the key in FILE' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l run-dir -d 'Directory for pid, port, volume, key and token files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l keepstore -d 'Run this keepstore program instead of `cibox keepstore`' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l keep-enforce-permissions -d 'Refuse GETs without a valid permission signature (signed with the test cluster\'s key, the one the API server signs manifests with, unless --blob-signing-key is given)'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l env -d 'Print `export VAR=value` lines for a shell to eval'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -l json -d 'Print a JSON description of the servers'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep_proxy" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_keep_proxy" -l env -d 'Print `export ARVADOS_KEEP_PROXY=...` for a shell to eval'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep_proxy" -l json -d 'Print a JSON description'
complete -c cibox -n "__fish_cibox_using_subcommand start_keep_proxy" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand start_nginx" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_nginx" -l nginx -d 'Run this nginx program instead of the one found in PATH or the sbin directories' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand start_nginx" -l json -d 'Print a JSON description'
complete -c cibox -n "__fish_cibox_using_subcommand start_nginx" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand stop_all" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand stop_all" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand stop_api" -l run-dir -d 'Directory start_api used [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand stop_api" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand stop_arv-git-httpd" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand stop_arv-git-httpd" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand stop_keep" -l run-dir -d 'Directory start_keep used [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand stop_keep" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand stop_keep_proxy" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand stop_keep_proxy" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand stop_nginx" -l run-dir -d 'Directory of the run\'s state files [default: $TMPDIR/cibox]' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand stop_nginx" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand update" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand update" -l executable -d 'Executable to copy in, at its binfmt_misc interpreter path, with its libraries' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand update" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand update" -l skip-binfmt -d 'Don\'t look BIN up in binfmt_misc: put it at the path given (a relative one under /)'
complete -c cibox -n "__fish_cibox_using_subcommand update" -s u -l add-current-user -d 'Add the current user (uid and name) to the image\'s passwd'
complete -c cibox -n "__fish_cibox_using_subcommand update" -s h -l help -d 'Print help (see more with \'--help\')'
