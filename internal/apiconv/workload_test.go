package apiconv

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/palisade-net/palisade/internal/model"
)

func template(tweaks ...func(*corev1.PodTemplateSpec)) corev1.PodTemplateSpec {
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "nginx", Image: "nginx",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
		}}},
	}
	for _, tw := range tweaks {
		tw(&t)
	}
	return t
}

var webSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

func meta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "prod"} }

func TestWorkloadConversion(t *testing.T) {
	webPorts := []model.ContainerPort{{Name: "http", Port: 80, Protocol: model.TCP}}
	tests := []struct {
		name string
		obj  runtime.Object
		want *model.Pod
	}{
		{
			name: "Deployment, replicas defaulted, namespace defaulted",
			obj: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"owner": "me"}},
				Spec: appsv1.DeploymentSpec{Selector: webSelector, Template: template()}},
			want: &model.Pod{Namespace: "default", Name: "web[Deployment]", Labels: map[string]string{"app": "web"},
				Ports: webPorts, Images: []string{"nginx"}, Workload: "Deployment", Replicas: 1},
		},
		{
			name: "ReplicaSet with replicas",
			obj:  &appsv1.ReplicaSet{ObjectMeta: meta("web"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr[int32](3), Selector: webSelector, Template: template()}},
			want: &model.Pod{Namespace: "prod", Name: "web[ReplicaSet]", Labels: map[string]string{"app": "web"},
				Ports: webPorts, Images: []string{"nginx"}, Workload: "ReplicaSet", Replicas: 3},
		},
		{
			name: "StatefulSet scaled to zero, selector by expression",
			obj: &appsv1.StatefulSet{ObjectMeta: meta("db"), Spec: appsv1.StatefulSetSpec{Replicas: ptr[int32](0),
				Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "db"}}}},
				Template: template()}},
			want: &model.Pod{Namespace: "prod", Name: "db[StatefulSet]", Labels: map[string]string{"app": "web"},
				Ports: webPorts, Images: []string{"nginx"}, Workload: "StatefulSet", Replicas: 0},
		},
		{
			name: "DaemonSet: host network, replicas unknown",
			obj: &appsv1.DaemonSet{ObjectMeta: meta("agent"), Spec: appsv1.DaemonSetSpec{Selector: webSelector,
				Template: template(func(t *corev1.PodTemplateSpec) { t.Spec.HostNetwork = true })}},
			want: &model.Pod{Namespace: "prod", Name: "agent[DaemonSet]", Labels: map[string]string{"app": "web"}, HostNetwork: true,
				Ports: webPorts, Images: []string{"nginx"}, Workload: "DaemonSet", Replicas: 0},
		},
		{
			name: "Job: parallelism, job-name labels added",
			obj:  &batchv1.Job{ObjectMeta: meta("migrate"), Spec: batchv1.JobSpec{Parallelism: ptr[int32](4), Template: template()}},
			want: &model.Pod{Namespace: "prod", Name: "migrate[Job]",
				Labels: map[string]string{"app": "web", "job-name": "migrate", "batch.kubernetes.io/job-name": "migrate"},
				Ports:  webPorts, Images: []string{"nginx"}, Workload: "Job", Replicas: 4},
		},
		{
			name: "Job with a manual selector: labels as written",
			obj: &batchv1.Job{ObjectMeta: meta("migrate"), Spec: batchv1.JobSpec{ManualSelector: ptr(true), Selector: webSelector,
				Template: template()}},
			want: &model.Pod{Namespace: "prod", Name: "migrate[Job]", Labels: map[string]string{"app": "web"},
				Ports: webPorts, Images: []string{"nginx"}, Workload: "Job", Replicas: 1},
		},
		{
			name: "CronJob: its job template's parallelism",
			obj: &batchv1.CronJob{ObjectMeta: meta("nightly"), Spec: batchv1.CronJobSpec{Schedule: "@daily",
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Parallelism: ptr[int32](2), Template: template()}}}},
			want: &model.Pod{Namespace: "prod", Name: "nightly[CronJob]", Labels: map[string]string{"app": "web"},
				Ports: webPorts, Images: []string{"nginx"}, Workload: "CronJob", Replicas: 2},
		},
		{
			name: "ReplicationController: selector defaults to the template's labels",
			obj: &corev1.ReplicationController{ObjectMeta: meta("old"), Spec: corev1.ReplicationControllerSpec{
				Template: ptr(template(func(t *corev1.PodTemplateSpec) { t.Spec.NodeName = "node-1" }))}},
			want: &model.Pod{Namespace: "prod", Name: "old[ReplicationController]", Labels: map[string]string{"app": "web"}, Node: "node-1",
				Ports: webPorts, Images: []string{"nginx"}, Workload: "ReplicationController", Replicas: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Workload(tt.obj)
			if err != nil {
				t.Fatalf("Workload() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("Workload() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWorkloadValidation(t *testing.T) {
	badPort := template(func(t *corev1.PodTemplateSpec) { t.Spec.Containers[0].Ports[0].Name = "http_x" })
	tests := []struct {
		name  string
		obj   runtime.Object
		paths []string
		want  string // the first error line
	}{
		{
			name:  "Deployment: bad port name, named at the workload's field",
			obj:   &appsv1.Deployment{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Selector: webSelector, Template: badPort}},
			paths: []string{"spec.template.spec.containers[0].ports[0].name"},
			want:  `Deployment prod/web: spec.template.spec.containers[0].ports[0].name: Invalid value: "http_x": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`,
		},
		{
			name:  "CronJob: bad port under the job template",
			obj:   &batchv1.CronJob{ObjectMeta: meta("n"), Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: badPort}}}},
			paths: []string{"spec.jobTemplate.spec.template.spec.containers[0].ports[0].name"},
		},
		{
			name:  "selector does not match the template",
			obj:   &appsv1.Deployment{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}, Template: template()}},
			paths: []string{"spec.template.metadata.labels"},
			want:  "Deployment prod/web: spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
		},
		{
			name:  "selector missing",
			obj:   &appsv1.StatefulSet{ObjectMeta: meta("db"), Spec: appsv1.StatefulSetSpec{Template: template()}},
			paths: []string{"spec.selector"},
			want:  "StatefulSet prod/db: spec.selector: Required value",
		},
		{
			name:  "empty selector",
			obj:   &appsv1.DaemonSet{ObjectMeta: meta("a"), Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{}, Template: template()}},
			paths: []string{"spec.selector"},
		},
		{
			name: "bad selector operator",
			obj: &appsv1.ReplicaSet{ObjectMeta: meta("a"), Spec: appsv1.ReplicaSetSpec{Template: template(),
				Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Is"}}}}},
			paths: []string{"spec.selector.matchExpressions[0].operator"},
		},
		{
			name:  "StatefulSet name must be a DNS label",
			obj:   &appsv1.StatefulSet{ObjectMeta: meta("db.main"), Spec: appsv1.StatefulSetSpec{Selector: webSelector, Template: template()}},
			paths: []string{"metadata.name"},
		},
		{
			name:  "negative replicas and a bad template label",
			obj:   &appsv1.Deployment{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Replicas: ptr[int32](-1), Selector: webSelector, Template: template(func(t *corev1.PodTemplateSpec) { t.Labels["x"] = "a b" })}},
			paths: []string{"spec.replicas", "spec.template.metadata.labels"},
		},
		{
			name:  "Job: manual selector required",
			obj:   &batchv1.Job{ObjectMeta: meta("j"), Spec: batchv1.JobSpec{ManualSelector: ptr(true), Template: template()}},
			paths: []string{"spec.selector"},
		},
		{
			name:  "Job: negative parallelism",
			obj:   &batchv1.Job{ObjectMeta: meta("j"), Spec: batchv1.JobSpec{Parallelism: ptr[int32](-2), Template: template()}},
			paths: []string{"spec.parallelism"},
		},
		{
			name:  "Job: name too long for the job-name label",
			obj:   &batchv1.Job{ObjectMeta: meta(strings.Repeat("j", 64)), Spec: batchv1.JobSpec{Template: template()}},
			paths: []string{"spec.template.metadata.labels", "spec.template.metadata.labels"},
		},
		{
			name: "CronJob: selector, manual selector, long name",
			obj: &batchv1.CronJob{ObjectMeta: meta(strings.Repeat("c", 53)), Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{
				Spec: batchv1.JobSpec{Selector: webSelector, ManualSelector: ptr(true), Template: template()}}}},
			paths: []string{"spec.jobTemplate.spec.selector", "spec.jobTemplate.spec.manualSelector", "metadata.name"},
		},
		{
			name:  "ReplicationController: no template",
			obj:   &corev1.ReplicationController{ObjectMeta: meta("rc"), Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": "web"}}},
			paths: []string{"spec.template"},
		},
		{
			name: "ReplicationController: no selector and no labels",
			obj: &corev1.ReplicationController{ObjectMeta: meta("rc"), Spec: corev1.ReplicationControllerSpec{
				Template: ptr(template(func(t *corev1.PodTemplateSpec) { t.Labels = nil }))}},
			paths: []string{"spec.selector"},
		},
		{
			name: "ReplicationController: selector does not match",
			obj: &corev1.ReplicationController{ObjectMeta: meta("rc"), Spec: corev1.ReplicationControllerSpec{
				Selector: map[string]string{"app": "api"}, Template: ptr(template())}},
			paths: []string{"spec.template.metadata.labels"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Workload(tt.obj)
			if diff := cmp.Diff(tt.paths, fieldPaths(t, err)); diff != "" {
				t.Fatalf("Workload() error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if got != nil {
				t.Errorf("Workload() = %+v with an error", got)
			}
			if first := strings.Split(err.Error(), "\n")[0]; tt.want != "" && first != tt.want {
				t.Errorf("Workload() error = %q, want %q", first, tt.want)
			}
		})
	}
}

func TestWorkloadInputs(t *testing.T) {
	if _, err := Workload((*appsv1.Deployment)(nil)); err == nil {
		t.Error("Workload(nil Deployment) succeeded")
	}
	if _, err := Workload(&corev1.Pod{}); err == nil {
		t.Error("Workload(Pod) succeeded")
	}
	d := &appsv1.Deployment{ObjectMeta: meta("web"), Spec: appsv1.DeploymentSpec{Selector: webSelector, Template: template()}}
	p, err := Workload(d)
	if err != nil {
		t.Fatal(err)
	}
	p.Labels["app"] = "changed"
	j := &batchv1.Job{ObjectMeta: meta("j"), Spec: batchv1.JobSpec{Template: template()}}
	if _, err := Workload(j); err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Labels["app"] != "web" || len(j.Spec.Template.Labels) != 1 {
		t.Error("Workload() changed or shares its input's labels")
	}
}
