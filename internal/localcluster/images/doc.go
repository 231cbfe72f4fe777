// Package images writes the container images the local cluster runs, without
// Docker or a registry, and imports them into containerd.
//
// Write turns a Spec (a reference, one layer's entries, entrypoint, env) into
// an OCI image-layout tar whose index carries the io.containerd.image.name
// annotation, the form containerd 2.x's importer stores under exactly that
// name. Output is deterministic: the same inputs give the same manifest
// digest. Pause, Busybox and Driver build the three images the cluster needs
// from host files (gcc, Debian's busybox-static, our own binaries and the
// shared libraries they load); Import loads one tar with ctr.
//
// Nothing here talks to a network; every input is a host file or bytes in
// memory.
package images
