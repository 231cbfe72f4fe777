package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lookupClaim returns the ResourceClaim ref names, or nil when it no longer
// exists: deleted, or replaced by a claim with the same name and a new UID.
// A ref without a name (a record or spec from before names were kept) is
// looked up by UID in a list: a real API server answers a GET with an
// empty name with a validation error, not NotFound.
func (d *Driver) lookupClaim(ctx context.Context, ref claimRef) (*resourceapi.ResourceClaim, error) {
	if d.cfg.Client == nil {
		return nil, errors.New("no API client")
	}
	claims := d.cfg.Client.ResourceV1().ResourceClaims(ref.Namespace)
	if ref.Name == "" {
		list, err := claims.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list ResourceClaims to find claim UID %s: %w", ref.UID, err)
		}
		for i := range list.Items {
			if string(list.Items[i].UID) == ref.UID {
				return &list.Items[i], nil
			}
		}
		return nil, nil
	}
	obj, err := claims.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get ResourceClaim %s: %w", ref, err)
	}
	if string(obj.UID) != ref.UID {
		return nil, nil
	}
	return obj, nil
}

// stillNeeded tells whether the claim ref still has exactly the allocation
// devs (sorted, as claimAllocation returns): it exists with that UID and
// its allocation for our driver lists the same devices for the same
// requests. A claim that was deallocated, or allocated again elsewhere,
// does not need what was prepared for its old allocation.
func (d *Driver) stillNeeded(ctx context.Context, ref claimRef, devs []allocatedDevice) (bool, *resourceapi.ResourceClaim, error) {
	claim, err := d.lookupClaim(ctx, ref)
	if err != nil || claim == nil {
		return false, nil, err
	}
	current := claimAllocation(claim, d.cfg.DriverName)
	return len(current) > 0 && slices.Equal(current, devs), claim, nil
}
