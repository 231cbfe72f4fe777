package images

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	domainPattern = regexp.MustCompile(`^(localhost|[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+)(:[0-9]+)?$|^[a-zA-Z0-9-]+:[0-9]+$`)
	repoPattern   = regexp.MustCompile(`^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// referenceTag checks that ref is a fully qualified, tagged image reference
// (domain/repository:tag) and returns its tag.
//
// Short names are refused on purpose: containerd's importer stores the
// io.containerd.image.name annotation verbatim, while the kubelet and the CRI
// normalise what a pod asks for (busybox:1 becomes
// docker.io/library/busybox:1). A short name would import and then never be
// found.
func referenceTag(ref string) (string, error) {
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("image reference %q: digests are not supported, use a tag", ref)
	}
	domain, rest, found := strings.Cut(ref, "/")
	if !found || !domainPattern.MatchString(domain) {
		return "", fmt.Errorf("image reference %q: must start with a registry domain such as localhost/ or registry.k8s.io/", ref)
	}
	colon := strings.LastIndex(rest, ":")
	if colon < 0 {
		return "", fmt.Errorf("image reference %q: missing :tag", ref)
	}
	repo, tag := rest[:colon], rest[colon+1:]
	if !repoPattern.MatchString(repo) {
		return "", fmt.Errorf("image reference %q: repository %q must be lowercase letters, digits and . _ - separated by /", ref, repo)
	}
	if !tagPattern.MatchString(tag) {
		return "", fmt.Errorf("image reference %q: invalid tag %q", ref, tag)
	}
	return tag, nil
}

// tarFileName turns ref into a file name that is unique per reference, so
// several images can share one work directory.
func tarFileName(ref string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		default:
			return '_'
		}
	}, ref)
	return name + ".tar"
}
