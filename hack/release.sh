#!/usr/bin/env bash
# Builds a signed airlock release into $DIST (default dist/$VERSION):
#   airlock_OS_ARCH                  static CLI binaries (CGO_ENABLED=0, -trimpath, -s -w, version ldflags)
#   airlock-controller_VERSION.oci.tar  the controller image (hack/image), an OCI layout for `airlock import`
#   airlock_OS_ARCH.cdx.json         a CycloneDX SBOM of each binary, from the build information Go
#                                    embeds in it (cyclonedx-gomod bin, pinned): exactly what was linked
#   airlock-controller_linux_ARCH.cdx.json  the same for the controller binary of each image platform,
#                                    built with the image's flags
#   airlock-chart-render_linux_ARCH.cdx.json  the same for the image's other binary, the process the
#                                    controller renders Helm charts in
#   SHA256SUMS                       the checksums of all of the above
#   FILE.sig                         a signature of each file and of SHA256SUMS, by `airlock sign blob`
#                                    (cosign sign-blob's format: `cosign verify-blob --key`, `airlock verify blob`
#                                    and `openssl dgst -sha256 -verify` all accept it)
#
#   RELEASE_KEY=release.key COSIGN_PASSWORD=… hack/release.sh
#
# VERSION (default: git describe), PLATFORMS (default: linux and darwin, amd64 and arm64) and
# IMAGE_PLATFORMS (default: linux/amd64,linux/arm64) choose what is built. Each new platform
# compiles the dependencies once more: about 3 minutes per platform on 2 cores, cold.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
IMAGE_PLATFORMS=${IMAGE_PLATFORMS:-linux/amd64,linux/arm64}
DIST=${DIST:-dist/$VERSION}
CYCLONEDX=${CYCLONEDX:-github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0}
: "${RELEASE_KEY:?set RELEASE_KEY to the cosign private key that signs the release (its password in COSIGN_PASSWORD)}"

rm -rf "$DIST"
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
ldflags="-s -w -X main.version=$VERSION -X main.commit=$COMMIT"

for p in $PLATFORMS; do
  os=${p%/*} arch=${p#*/}
  echo "release: airlock for $os/$arch" >&2
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$DIST/airlock_${os}_${arch}" ./cmd/airlock
done

echo "release: airlock-controller image for $IMAGE_PLATFORMS" >&2
go run ./hack/image --tag "$VERSION" --platforms "$IMAGE_PLATFORMS" --output "$DIST/airlock-controller_${VERSION}.oci.tar" >"$DIST/airlock-controller.ref"

echo "release: SBOMs" >&2
sbom=$(mktemp -d)
(cd "$sbom" && GOOS= GOARCH= GOBIN="$sbom" go install "$CYCLONEDX")
for p in $PLATFORMS; do
  os=${p%/*} arch=${p#*/}
  "$sbom/cyclonedx-gomod" bin -json -version "$VERSION" -output "$DIST/airlock_${os}_${arch}.cdx.json" "$DIST/airlock_${os}_${arch}"
done
for p in ${IMAGE_PLATFORMS//,/ }; do
  os=${p%/*} arch=${p#*/}
  for name in airlock-controller airlock-chart-render; do
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$sbom/$name" ./cmd/$name
    "$sbom/cyclonedx-gomod" bin -json -version "$VERSION" -output "$DIST/${name}_${os}_${arch}.cdx.json" "$sbom/$name"
  done
done
rm -rf "$sbom"

(cd "$DIST" && sha256sum airlock_* airlock-controller_*.oci.tar airlock-controller_*.cdx.json airlock-chart-render_*.cdx.json >SHA256SUMS)

# Sign with airlock's own `sign blob`, built for this machine from the same tree.
signer=$(mktemp -d)
trap 'rm -rf "$signer"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$signer/airlock" ./cmd/airlock
for f in "$DIST"/airlock_* "$DIST"/airlock-controller_*.oci.tar "$DIST"/airlock-controller_*.cdx.json "$DIST"/airlock-chart-render_*.cdx.json "$DIST"/SHA256SUMS; do
  "$signer/airlock" sign blob "$f" --key "$RELEASE_KEY" --output-signature "$f.sig" 2>/dev/null
done
echo "release: $VERSION in $DIST" >&2
ls -l "$DIST" >&2
