package kubelet

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"

	"github.com/podlife/podlife/lifecycle"
)

// twoPayloads is payload250 and the same answer with one container of pod 7
// restarted once more.
func twoPayloads(t testing.TB) (a, b []byte) {
	a = payload250(t)
	var l corev1.PodList
	if err := json.Unmarshal(a, &l); err != nil {
		t.Fatal(err)
	}
	l.Items[7].Status.ContainerStatuses[0].RestartCount++
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// A Decoder gives what Decode gives, and reuses the previous answer's pods
// whose bytes did not change.
func TestDecoderReusesUnchangedPods(t *testing.T) {
	a, b := twoPayloads(t)
	var d Decoder
	first, err := d.Decode(a)
	if err != nil {
		t.Fatal(err)
	}
	second, err := d.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Decode(b)
	if !reflect.DeepEqual(second, want) {
		t.Fatal("Decoder and Decode differ")
	}
	restarts := func(p *lifecycle.Pod) int32 {
		var n int32
		for _, c := range p.Containers {
			n += c.RestartCount
		}
		return n
	}
	if restarts(second[7]) != restarts(first[7])+1 {
		t.Fatalf("pod 7's change not decoded: restarts %d then %d", restarts(first[7]), restarts(second[7]))
	}
	reused := 0
	for i := range second {
		if unsafe.StringData(second[i].UID) == unsafe.StringData(first[i].UID) {
			reused++
		}
	}
	if reused != len(second)-1 || unsafe.StringData(second[7].UID) == unsafe.StringData(first[7].UID) {
		t.Fatalf("%d of %d pods reused; want all but the changed one", reused, len(second))
	}
	if _, err := d.Decode([]byte(`{"kind":"PodList","items":[{"metadata":{"uid":3}}]}`)); err == nil {
		t.Fatal("a bad item decoded")
	}
}

// BenchmarkDecoderOneChange decodes a 250-pod answer in which one pod
// changed since the previous one: the agent's case under churn.
func BenchmarkDecoderOneChange(b *testing.B) {
	x, y := twoPayloads(b)
	var d Decoder
	d.Decode(x)
	b.SetBytes(int64(len(x)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		body := x
		if i%2 == 1 {
			body = y
		}
		if _, err := d.Decode(body); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// Over many polls, a Decoder decodes only the pods whose bytes changed since
// the previous answer: every other pod is the very value decoded when it was
// last new (its strings at the same address), poll after poll.
func TestDecoderReusesAcrossPolls(t *testing.T) {
	var l corev1.PodList
	if err := json.Unmarshal(payload250(t), &l); err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var prev []*lifecycle.Pod
	decodedAt := map[int]int{} // pod index -> the poll that last decoded it
	// The pod whose container restarts before each poll (-1: none).
	for poll, change := range []int{-1, -1, 7, 7, 42, -1, 100, 7, -1, -1} {
		if change >= 0 {
			l.Items[change].Status.ContainerStatuses[0].RestartCount++
		}
		body, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		pods, err := d.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := Decode(body); !reflect.DeepEqual(pods, want) {
			t.Fatalf("poll %d: Decoder and Decode differ", poll)
		}
		if poll == 0 {
			prev = pods
			continue
		}
		var redecoded []string
		for j := range pods {
			if unsafe.StringData(pods[j].UID) != unsafe.StringData(prev[j].UID) {
				redecoded = append(redecoded, pods[j].Name)
				decodedAt[j] = poll
			}
		}
		want := "[]"
		if change >= 0 {
			want = "[" + l.Items[change].Name + "]"
		}
		if got := fmt.Sprint(redecoded); got != want {
			t.Fatalf("poll %d: decoded again %d pods %.80s, want only the changed one %s", poll, len(redecoded), got, want)
		}
		prev = pods
	}
	if len(decodedAt) != 3 || decodedAt[7] != 7 || decodedAt[42] != 4 || decodedAt[100] != 6 {
		t.Fatalf("pods decoded again at polls %v", decodedAt)
	}
}

// The decoder keeps what decides restarts: a container's own restart
// policy and its restartPolicyRules, in spec order.
func TestDecodeRestartRules(t *testing.T) {
	body := `{"kind":"PodList","items":[{"metadata":{"uid":"u","name":"p","namespace":"n"},
"spec":{"restartPolicy":"Never","containers":[{"name":"app","restartPolicy":"Never","readinessProbe":{"exec":{"command":["true"]}},
"restartPolicyRules":[{"action":"Restart","exitCodes":{"operator":"In","values":[42,43]}},{"action":"Restart","exitCodes":{"operator":"NotIn","values":[0]}}]}]},
"status":{"phase":"Running","containerStatuses":[{"name":"app","restartCount":1}]}}]}`
	pods, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	c := pods[0].Containers[0]
	if c.RestartPolicy != "Never" || c.RestartRules != "Restart:In:42,43;Restart:NotIn:0" || !c.ReadinessProbe {
		t.Fatalf("got policy %q rules %q probe %v", c.RestartPolicy, c.RestartRules, c.ReadinessProbe)
	}
}
