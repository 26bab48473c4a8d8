// Command hollowlocal is kubemark's hollow kubelet (k8s.io/kubernetes
// cmd/kubemark/app.run, --morph=kubelet, fake image service) with what a
// loopback-only harness needs and kubemark has no flag for:
//   - the kubelet server binds --address (default 127.0.0.1; kubemark hard-codes
//     0.0.0.0, hollow_kubelet.go c.Address), or is off with --kubelet-port=0;
//   - --node-ip (default: the default-route address, chosen once) so the
//     kubelet never resolves its node name by DNS (it does net.LookupIP(name)
//     at every node status update, every 10 s, when no node IP is set);
//   - root dir, static pod dir, pod logs and the fake CRI socket under
//     --root-dir (kubemark: /tmp/hollow-kubelet.* and /tmp/kubelet_remote_*.sock);
//   - no static pod dir by default (--static-pods): one inotify instance
//     (the plugin watcher) instead of two;
//   - SIGTERM/SIGINT stop the fake runtime, remove the root dir and exit 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	remote "k8s.io/cri-client/pkg"
	fakeremote "k8s.io/cri-client/pkg/fake"
	"k8s.io/klog/v2"
	cadvisortest "k8s.io/kubernetes/pkg/kubelet/cadvisor/testing"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	"k8s.io/kubernetes/pkg/kubemark"
)

func main() {
	name := flag.String("name", "", "node name (required)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig with the node's credentials (required)")
	port := flag.Int("kubelet-port", 0, "kubelet server port; 0 = no kubelet server")
	address := flag.String("address", "127.0.0.1", "kubelet server bind address")
	nodeIP := flag.String("node-ip", "auto", `node InternalIP; "auto" = default-route address, "" = kubelet default (DNS lookup of the node name every 10 s)`)
	rootParent := flag.String("root-dir", "", "parent of this node's root dir (default: $TMPDIR)")
	maxPods := flag.Int("max-pods", 110, "max pods")
	qps := flag.Float64("kube-api-qps", 10, "client QPS (kubemark default)")
	burst := flag.Int("kube-api-burst", 20, "client burst (kubemark default)")
	staticPods := flag.Bool("static-pods", false, "watch a static pod dir (kubemark does; costs one inotify instance)")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()
	if *name == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "hollowlocal: --name and --kubeconfig are required")
		os.Exit(2)
	}
	if err := run(*name, *kubeconfig, *port, *address, *nodeIP, *rootParent, *maxPods, float32(*qps), *burst, *staticPods); err != nil {
		fmt.Fprintln(os.Stderr, "hollowlocal:", err)
		os.Exit(1)
	}
}

func run(name, kubeconfig string, port int, address, nodeIP, rootParent string, maxPods int, qps float32, burst int, staticPods bool) error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = "hollow-kubelet"
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		return err
	}

	f, c := kubemark.GetHollowKubeletConfig(&kubemark.HollowKubeletOptions{
		NodeName: name, KubeletPort: port, KubeletReadOnlyPort: 0, MaxPods: maxPods,
		NodeLabels: map[string]string{},
	})
	// GetHollowKubeletConfig made /tmp/hollow-kubelet.*: move everything to our own root dir.
	os.RemoveAll(f.RootDirectory)
	root, err := os.MkdirTemp(rootParent, "hollow-"+name+".")
	if err != nil {
		return err
	}
	// Absolute: the kubelet turns a relative root dir's socket paths into
	// paths under / (unix:/<relative>/pod-resources/kubelet.sock).
	if root, err = filepath.Abs(root); err != nil {
		return err
	}
	defer os.RemoveAll(root)
	f.RootDirectory = root
	c.StaticPodPath = filepath.Join(root, "static-pods")
	c.PodLogsDir = filepath.Join(root, "pod-logs")
	for _, d := range []string{c.StaticPodPath, c.PodLogsDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if !staticPods {
		c.StaticPodPath = "" // no file pod source, so no inotify watcher on it
	}
	c.Address = address
	c.EnableServer = port > 0
	switch nodeIP {
	case "":
	case "auto":
		ip, err := utilnet.ResolveBindAddress(net.IPv4zero)
		if err != nil {
			return fmt.Errorf("node IP: %w", err)
		}
		f.NodeIP = ip.String()
	default:
		f.NodeIP = nodeIP
	}
	klog.Infof("hollowlocal: root dir %s, kubelet server %v on %s:%d, node IP %q", root, c.EnableServer, address, port, f.NodeIP)

	hb := *cfg
	hb.Timeout = c.NodeStatusUpdateFrequency.Duration
	if lt := time.Duration(c.NodeLeaseDurationSeconds) * time.Second; hb.Timeout > lt {
		hb.Timeout = lt
	}
	hb.QPS = -1
	heartbeat, err := clientset.NewForConfig(&hb)
	if err != nil {
		return err
	}

	endpoint := "unix://" + filepath.Join(root, "cri.sock")
	fakeRuntime := fakeremote.NewFakeRemoteRuntime()
	if err := fakeRuntime.Start(endpoint); err != nil {
		return fmt.Errorf("fake runtime: %w", err)
	}
	defer fakeRuntime.Stop()
	runtimeService, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).
		WithConnectionTimeout(15 * time.Second).Build(ctx)
	if err != nil {
		return fmt.Errorf("runtime service: %w", err)
	}

	hk := kubemark.NewHollowKubelet(f, c, client, heartbeat,
		&cadvisortest.Fake{NodeName: name}, fakeRuntime.ImageService, runtimeService,
		cm.NewStubContainerManager())
	go hk.Run(ctx) // blocks forever; klog.Fatal on error
	<-ctx.Done()
	klog.Infof("hollowlocal: %s stopping", name)
	return nil
}
