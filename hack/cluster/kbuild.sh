# Shared helper (sourced, not run): build any k8s.io/kubernetes command from the
# Go module proxy with the scratch-module trick of hack/apiserver/build.sh.
#
#   . hack/cluster/kbuild.sh
#   kube_build_cmds SRC_DIR OUT_DIR cmd/kubelet cmd/kube-proxy ...
#
# SRC_DIR gets a go.mod that requires k8s.io/kubernetes $KUBE_VERSION and
# replaces every staging module (`k8s.io/x => ./staging/src/k8s.io/x` in
# kubernetes' own go.mod, which is why `go install k8s.io/kubernetes/...@v` is
# refused) with its published v0.Y.Z twin; a tools.go imports the commands so
# `go mod tidy` resolves them. All commands are built by one `go build`
# (shared compilation), into OUT_DIR/NAME-$KUBE_VERSION, with the version
# stamped as the release build does.
#
# Needs: KUBE_VERSION set; a log function (defined here if missing).
declare -F log >/dev/null || log() { echo "kbuild: $*" >&2; }

kube_scratch_module() {  # kube_scratch_module SRC_DIR MODNAME PKG...
  local src="$1" mod="$2"; shift 2
  local staging="v0.${KUBE_VERSION#v1.}"   # v1.37.2 -> v0.37.2
  mkdir -p "$src"
  local gomod
  gomod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  [ -f "$gomod" ] || { log "cannot download k8s.io/kubernetes@$KUBE_VERSION"; return 1; }
  local gover
  gover=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  {
    echo "module $mod"
    echo
    echo "go $gover"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    awk -v s="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "\t" $1 " => " $1 " " s}' "$gomod"
    echo ")"
  } > "$src/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    local p; for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
    printf ')\n'
  } > "$src/tools.go"
  log "resolving modules in $src"
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod go mod tidy)
}

kube_ldflags() {
  local p=k8s.io/component-base/version
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  echo "-s -w -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
}

kube_build_cmds() {  # kube_build_cmds SRC_DIR OUT_DIR cmd/x cmd/y ...
  local src="$1" out="$2"; shift 2
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/$c"); done
  kube_scratch_module "$src" kubeclusterbuild "${pkgs[@]}" || return 1
  local tmp="$out/.tmp.$$"
  mkdir -p "$tmp"
  log "building ${*##*/} $KUBE_VERSION (one go build; many minutes on 2 cores)"
  local t0=$SECONDS
  (cd "$src" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags)" -o "$tmp/" "${pkgs[@]}") || { rm -rf "$tmp"; return 1; }
  for c in "$@"; do mv "$tmp/${c##*/}" "$out/${c##*/}-$KUBE_VERSION"; done
  rmdir "$tmp"
  log "built ${*##*/} in $((SECONDS - t0))s"
}
