package main

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The demo's labels, beside partOfKey from cli.go: the demo's name, and an
// instance value unique to one run, which the list and the cleanup select.
const (
	nameKey      = "app.kubernetes.io/name"
	instanceKey  = "app.kubernetes.io/instance"
	componentKey = "app.kubernetes.io/component"
)

func demoLabels(runID string) map[string]string {
	return map[string]string{partOfKey: partOfValue, nameKey: demoName, instanceKey: runID}
}

// newPod returns a Pod named demo-restclient-<random> by the server. A zero
// grace period makes a delete immediate, so cleanup leaves nothing
// terminating behind.
func newPod(runID string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "demo-restclient-", Labels: demoLabels(runID)},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}},
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
}

// newDeployment returns a Deployment with no replicas: the point is its URL,
// not its Pods. Its selector needs a label the demo's own Pods lack: a
// ReplicaSet adopts every orphan Pod its selector matches and, at zero
// replicas, deletes them.
func newDeployment(runID string) *appsv1.Deployment {
	podLabels := demoLabels(runID)
	podLabels[componentKey] = "deployment"
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "demo-restclient-", Labels: demoLabels(runID)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{instanceKey: runID, componentKey: "deployment"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}
