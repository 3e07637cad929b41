package helmrender_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/releaseutil"

	"airlock.dev/airlock/build"
)

// TestInstallOrderIsHelms: build's copy of Helm's install order, kept so
// that build does not link Helm, is Helm's.
func TestInstallOrderIsHelms(t *testing.T) {
	if diff := cmp.Diff([]string(releaseutil.InstallOrder), build.InstallOrder); diff != "" {
		t.Errorf("build.InstallOrder differs from Helm's releaseutil.InstallOrder (-helm +build): copy Helm's\n%s", diff)
	}
}
