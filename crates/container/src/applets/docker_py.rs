//! `docker.py`: the name QEMU knows the container helper by. Called as `docker.py`, cibox
//! behaves exactly like `cibox`; `cibox --install` writes it as a Python stub, since QEMU's
//! configure and Makefiles run it through the interpreter (`$python docker.py ...`).

inventory::submit! {
    cibox_core::applet::Script {
        name: "docker.py",
        actions: None,
        stub: Some(cibox_core::pystub::text),
    }
}
