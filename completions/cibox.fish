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
complete -c cibox -n "__fish_cibox_needs_command" -l install -d 'Create a link named after each applet (and docker.py) in DIR' -r -f -a "(__fish_complete_directories)"
complete -c cibox -n "__fish_cibox_needs_command" -l list -d 'Print every applet name, one a line'
complete -c cibox -n "__fish_cibox_needs_command" -l force -d 'With --install: replace files that are not cibox links'
complete -c cibox -n "__fish_cibox_needs_command" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_needs_command" -s V -l version -d 'Print version'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "build" -d 'Build an image from a Dockerfile unless it is up to date'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "cc" -d 'Run a compiler in an image on the current directory, as the current user'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "check" -d 'Check whether an image is up to date with its Dockerfile, or recent enough'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "clean" -d 'Remove every labelled container, running or exited'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "fetch" -d 'Pull an image from a registry and tag it with its local name'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "images" -d 'List images with the engine\'s own output and status'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "probe" -d 'Tell which container engine works: podman, docker, sudo docker or no'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "run" -d 'Run a container with cleanup on exit; exit status is the command\'s'
complete -c cibox -n "__fish_cibox_needs_command" -f -a "update" -d 'Add an executable with its libraries, or the current user, to an image'
complete -c cibox -n "__fish_cibox_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cibox -n "__fish_cibox_using_subcommand build" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand build" -s t -d 'Image tag' -r
complete -c cibox -n "__fish_cibox_using_subcommand build" -s f -d 'Dockerfile' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand build" -s e -l include-executable -d 'Copy this executable (at its binfmt_misc interpreter path) and every library it needs' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand build" -l extra-files -d 'Files copied into the build context (for ADD/COPY in the Dockerfile)' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand build" -s r -l registry -d 'Registry to take cached layers and `FROM qemu/` bases from' -r
complete -c cibox -n "__fish_cibox_using_subcommand build" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand build" -l skip-binfmt -d 'Don\'t look BIN up in binfmt_misc: copy it at its own path'
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
complete -c cibox -n "__fish_cibox_using_subcommand check" -l olderthan -d 'Age limit in minutes (age check)' -r
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
complete -c cibox -n "__fish_cibox_using_subcommand update" -l engine -d 'Container engine: auto (podman, docker, sudo docker), docker or podman' -r -f -a "auto\t'podman, then docker, then `sudo -n docker`: the first that answers'
docker\t'docker only (and `sudo -n docker` when plain docker does not answer)'
podman\t'podman only'"
complete -c cibox -n "__fish_cibox_using_subcommand update" -l executable -d 'Executable to copy in, at its binfmt_misc interpreter path, with its libraries' -r -F
complete -c cibox -n "__fish_cibox_using_subcommand update" -l quiet -d 'Run quietly: hide the engine\'s standard output'
complete -c cibox -n "__fish_cibox_using_subcommand update" -l skip-binfmt -d 'Don\'t look BIN up in binfmt_misc: copy it at its own path'
complete -c cibox -n "__fish_cibox_using_subcommand update" -s u -l add-current-user -d 'Add the current user (uid and name) to the image\'s passwd'
complete -c cibox -n "__fish_cibox_using_subcommand update" -s h -l help -d 'Print help (see more with \'--help\')'
