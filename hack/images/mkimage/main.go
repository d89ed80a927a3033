// mkimage writes a single-layer container image, built on scratch from a
// directory, as a docker-archive tarball (what `docker save` writes and
// `ctr images import` reads), with one or more repo:tag names.
//
//	mkimage -o out.tar -t registry.k8s.io/pause:3.10.2 -entrypoint /pause \
//	  -user 65535:65535 -label k=v -env K=V ROOTFS_DIR
//
// The layer is reproducible: entries sorted, owned by 0:0 (unless -chown
// maps a path), modification times set to -epoch. Symlinks are kept as
// symlinks; only regular files, directories and symlinks are allowed.
//
//	mkimage serve [-addr 127.0.0.1:5000] [-v] TAR...
//
// serves the images of the tarballs from an in-memory registry (plain HTTP),
// each under its repository path without the registry host
// (docker.io/library/nginx:latest at ADDR/library/nginx:latest), which is
// what a containerd registry mirror asks for; it prints "ready ADDR" when
// all are pushed and serves until SIGTERM/SIGINT.
package main

import (
	"archive/tar"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "mkimage serve:", err)
			os.Exit(1)
		}
		return
	}
	var tags, envs, labels, chowns, ports list
	out := flag.String("o", "", "output tarball (required)")
	entrypoint := flag.String("entrypoint", "", "entrypoint, a JSON array or one path")
	cmd := flag.String("cmd", "", "cmd, a JSON array or one word")
	user := flag.String("user", "", "user[:group] the image runs as")
	workdir := flag.String("workdir", "", "working directory")
	epoch := flag.Int64("epoch", 0, "modification and creation time, Unix seconds")
	flag.Var(&tags, "t", "repo:tag name, repeatable")
	flag.Var(&envs, "env", "K=V, repeatable")
	flag.Var(&labels, "label", "K=V, repeatable")
	flag.Var(&chowns, "chown", "PATH=UID:GID for a path in the layer, repeatable")
	flag.Var(&ports, "expose", "port/proto, repeatable")
	flag.Parse()
	if *out == "" || len(tags) == 0 || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkimage -o OUT.tar -t REPO:TAG [flags] ROOTFS_DIR")
		flag.PrintDefaults()
		os.Exit(2)
	}
	if err := run(*out, flag.Arg(0), tags, envs, labels, chowns, ports, *entrypoint, *cmd, *user, *workdir, time.Unix(*epoch, 0).UTC()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func argv(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var a []string
		err := json.Unmarshal([]byte(s), &a)
		return a, err
	}
	return []string{s}, nil
}

func run(out, root string, tags, envs, labels, chowns, ports list, entrypoint, cmd, user, workdir string, mtime time.Time) error {
	owners := map[string][2]int{}
	for _, c := range chowns {
		p, ids, ok := strings.Cut(c, "=")
		u, g, ok2 := strings.Cut(ids, ":")
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			return fmt.Errorf("bad -chown %q (want PATH=UID:GID)", c)
		}
		owners[strings.Trim(p, "/")] = [2]int{uid, gid}
	}

	layerFile, err := os.CreateTemp(filepath.Dir(out), ".layer-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(layerFile.Name())
	if err := writeLayer(layerFile, root, owners, mtime); err != nil {
		layerFile.Close()
		return err
	}
	if err := layerFile.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(layerFile.Name())
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: mtime}
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, envs...)
	if cf.Config.Entrypoint, err = argv(entrypoint); err != nil {
		return fmt.Errorf("-entrypoint: %w", err)
	}
	if cf.Config.Cmd, err = argv(cmd); err != nil {
		return fmt.Errorf("-cmd: %w", err)
	}
	cf.Config.User = user
	cf.Config.WorkingDir = workdir
	if len(labels) > 0 {
		cf.Config.Labels = map[string]string{}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			cf.Config.Labels[k] = v
		}
	}
	if len(ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}

	refs := map[name.Reference]v1.Image{}
	for _, t := range tags {
		tag, err := name.NewTag(t, name.StrictValidation)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	tmp := out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// writeLayer tars root's tree, sorted, with fixed owners and times.
func writeLayer(w io.Writer, root string, owners map[string][2]int, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		switch m := fi.Mode(); {
		case m.IsRegular(), m.IsDir():
		case m&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported file type %v", p, m)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = rel
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if o, ok := owners[rel]; ok {
			h.Uid, h.Gid = o[0], o[1]
		}
		h.ModTime, h.AccessTime, h.ChangeTime = mtime, time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if h.Mode&^0o7777 != 0 {
			h.Mode &= 0o7777
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func serve(args []string) error {
	fl := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fl.String("addr", "127.0.0.1:5000", "listen address")
	verbose := fl.Bool("v", false, "log every request")
	fl.Parse(args)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	logw := io.Discard
	if *verbose {
		logw = os.Stderr
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(logw, "registry: ", log.LstdFlags)))}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	host := ln.Addr().String()
	for _, path := range fl.Args() {
		opener := func() (io.ReadCloser, error) { return os.Open(path) }
		m, err := tarball.LoadManifest(opener)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, d := range m {
			for _, t := range d.RepoTags {
				tag, err := name.NewTag(t)
				if err != nil {
					return err
				}
				img, err := tarball.Image(opener, &tag)
				if err != nil {
					return fmt.Errorf("%s %s: %w", path, t, err)
				}
				dst, err := name.NewTag(host+"/"+tag.RepositoryStr()+":"+tag.TagStr(), name.Insecure)
				if err != nil {
					return err
				}
				if err := remote.Write(dst, img); err != nil {
					return fmt.Errorf("push %s: %w", dst, err)
				}
				fmt.Fprintf(os.Stderr, "mkimage serve: %s as %s\n", t, dst)
			}
		}
	}
	fmt.Printf("ready %s\n", host)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
		return srv.Close()
	case err := <-errc:
		return err
	}
}
