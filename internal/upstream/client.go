// Package upstream is podlife's connection to the API server: it watches this
// node's Node object and the pods bound to it (the view central monitoring
// has), delivers journaled transitions as Kubernetes Events, and keeps
// podlife's node conditions up to date.
package upstream

import (
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientConfig says how to reach the API server.
type ClientConfig struct {
	// Kubeconfig is a kubeconfig file; empty means in-cluster configuration.
	Kubeconfig string
	// Timeout bounds every request (default 5s; negative: none, for watches).
	Timeout time.Duration
	// QPS and Burst bound podlife's own request rate (default 5 / 10).
	QPS   float32
	Burst int
}

// NewClient builds a clientset with timeouts and a client-side rate limit.
func NewClient(cfg ClientConfig) (kubernetes.Interface, *rest.Config, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("API server config: %w", err)
	}
	switch {
	case cfg.Timeout < 0:
		rc.Timeout = 0
	case cfg.Timeout == 0:
		rc.Timeout = 5 * time.Second
	default:
		rc.Timeout = cfg.Timeout
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.QPS <= 0 {
		rc.QPS = 5
	}
	if rc.Burst <= 0 {
		rc.Burst = 10
	}
	rc.UserAgent = "podlife"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("API server client: %w", err)
	}
	return cs, rc, nil
}
