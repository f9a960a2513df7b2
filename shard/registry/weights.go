package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrNoWeightsSource is returned by GetWeightsSource before a coordinator
// published where workers fetch weights.
var ErrNoWeightsSource = errors.New("registry: no weights source published")

// WeightsKey holds the WeightsSource of the leading coordinator.
func WeightsKey(cluster string) string { return Prefix(cluster) + "weights" }

// WeightsSource says where workers without model files fetch their layers:
// the address of a Weights service and the model it serves.
type WeightsSource struct {
	Address string `json:"address"`
	Model   string `json:"model"`
}

// Transfer is a worker's progress fetching the weights of Layers: Done of
// Total bytes in its cache, Received of them over the wire (summed over
// the fetches of this range: a staged fetch, then the load that checks it).
type Transfer struct {
	Layers   [2]int `json:"layers"`
	Done     uint64 `json:"done"`
	Total    uint64 `json:"total"`
	Received uint64 `json:"received"`
}

// PublishWeightsSource records where the weights are served (the leader
// does, when it starts leading).
func PublishWeightsSource(ctx context.Context, cli *clientv3.Client, cluster string, s WeightsSource) error {
	if err := checkName("cluster", cluster); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, WeightsKey(cluster), string(b)); err != nil {
		return fmt.Errorf("registry: publish weights source: %w", err)
	}
	return nil
}

// GetWeightsSource reads the published WeightsSource.
func GetWeightsSource(ctx context.Context, cli *clientv3.Client, cluster string) (WeightsSource, error) {
	if err := checkName("cluster", cluster); err != nil {
		return WeightsSource{}, err
	}
	resp, err := cli.Get(ctx, WeightsKey(cluster))
	if err != nil {
		return WeightsSource{}, fmt.Errorf("registry: read weights source: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return WeightsSource{}, ErrNoWeightsSource
	}
	var s WeightsSource
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return WeightsSource{}, fmt.Errorf("registry: weights source: %w", err)
	}
	return s, nil
}
