package registry

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidName is returned for a cluster or worker name that cannot be
// part of a key: empty, or containing '/'.
var ErrInvalidName = errors.New("registry: invalid name")

// Prefix is the root of a cluster's keys: /phalanx/<cluster>/.
func Prefix(cluster string) string { return "/phalanx/" + cluster + "/" }

// WorkersPrefix holds one key per live worker.
func WorkersPrefix(cluster string) string { return Prefix(cluster) + "workers/" }

// WorkerKey is the key of one worker's record.
func WorkerKey(cluster, id string) string { return WorkersPrefix(cluster) + id }

// PlanKey holds the plan in force.
func PlanKey(cluster string) string { return Prefix(cluster) + "plan" }

// LeaderPrefix is the election prefix; candidates' keys live under
// LeaderPrefix + "/".
func LeaderPrefix(cluster string) string { return Prefix(cluster) + "leader" }

func checkName(kind, name string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w: %s %q", ErrInvalidName, kind, name)
	}
	return nil
}
