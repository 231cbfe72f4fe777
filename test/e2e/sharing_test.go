//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

const timeSlicedLong = `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Long"}}}`

// simGPU returns a GPU's state as the sim's hardware.json holds it.
func simGPU(t *testing.T, uuid string) sim.HardwareGPU {
	t.Helper()
	st, err := sim.ReadHardware(simStateDir)
	if err != nil || st == nil {
		t.Fatalf("read sim hardware: %v", err)
	}
	for _, g := range st.GPUs {
		if g.UUID == uuid {
			return g
		}
	}
	t.Fatalf("no GPU %s in the sim's hardware", uuid)
	return sim.HardwareGPU{}
}

func TestTimeSlicedClaimSharedByTwoPodsSetsTheGPUAndPutsItBack(t *testing.T) {
	ns := testNamespace(t)
	claim := resourceClaim(ns, "timesliced", request("gpu", "gpu.nvidia.com", `device.attributes["gpu.nvidia.com"].productName.matches("H100")`))
	claim.Spec.Devices.Config = append(claim.Spec.Devices.Config, opaqueConfig(timeSlicedLong))
	create(t, claim, suite.client.ResourceV1().ResourceClaims(ns).Create)
	for _, pod := range []string{"first", "second"} {
		create(t, reportPod(ns, pod, 1, podClaim{name: "gpu", claim: "timesliced"}), suite.client.CoreV1().Pods(ns).Create)
	}
	a, b := waitReport(t, ns, "first")["ctr0"], waitReport(t, ns, "second")["ctr0"]
	if len(a.UUIDs) != 1 || fmt.Sprint(a.UUIDs) != fmt.Sprint(b.UUIDs) {
		t.Fatalf("pods see %v and %v, want the same one GPU", a.UUIDs, b.UUIDs)
	}
	uuid := a.UUIDs[0]
	if g := simGPU(t, uuid); g.TimeSlice != gpu.TimeSliceLong || g.ComputeMode != gpu.ComputeModeDefault {
		t.Errorf("while the pods run, GPU %s has time slice %s and compute mode %s; want Long, Default", uuid, g.TimeSlice, g.ComputeMode)
	}

	ctx := context.Background()
	if err := suite.client.CoreV1().Pods(ns).Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// One pod still runs on the claim: the setting stays.
	waitPodGone(t, ns, "first")
	if g := simGPU(t, uuid); g.TimeSlice != gpu.TimeSliceLong {
		t.Errorf("with one pod left, GPU %s has time slice %s, want Long", uuid, g.TimeSlice)
	}
	if err := suite.client.CoreV1().Pods(ns).Delete(ctx, "second", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := waitFor(ctx, 2*time.Minute, "GPU "+uuid+" back to its time slice", func() (bool, error) {
		return simGPU(t, uuid).TimeSlice == gpu.TimeSliceDefault, nil
	})
	if err != nil {
		t.Fatalf("%v (has %s)", err, simGPU(t, uuid).TimeSlice)
	}
}

func waitPodGone(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	err := waitFor(ctx, 2*time.Minute, "pod "+ns+"/"+name+" gone", func() (bool, error) {
		_, err := suite.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Fatal(err)
	}
}
