package apiconv

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/palisade-net/palisade/internal/model"
)

// WorkloadKinds are the kinds Workload converts, in the order palisade
// names them.
var WorkloadKinds = []string{"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"}

// Job's generated labels: the API server adds them to a Job's pod template
// (unless spec.manualSelector is true and unless the template sets them),
// so policies may select a Job's pods by them.
const (
	jobNameLabel       = "batch.kubernetes.io/job-name"
	legacyJobNameLabel = "job-name"
)

// workload is what Workload reads of one workload object.
type workload struct {
	kind     string
	meta     *metav1.ObjectMeta
	nameFn   nameFunc
	template *corev1.PodTemplateSpec // nil: absent
	tpath    *field.Path             // where the template is
	replicas *int32
	rpath    *field.Path
	def      int // replicas when the field is absent
}

// Workload converts a Deployment, ReplicaSet, StatefulSet, DaemonSet
// (apps/v1), Job, CronJob (batch/v1) or ReplicationController (v1) into
// the one model.Pod that stands for the pods of its template: in the
// workload's namespace, named "NAME[KIND]", with the template's labels,
// node, hostNetwork, container ports and images, Workload set to KIND,
// Replicas from spec.replicas (Job: spec.parallelism; CronJob: its job
// template's) or the API default (1; 0 for a DaemonSet: several, unknown).
// It has no IPs: nothing in the workload says which addresses its pods get.
//
// The template is validated as a Pod is, and errors name the workload and
// the field as written in it (spec.template.spec.containers[0].ports[0].name).
// What the API server checks of the workload itself and that decides which
// pods it makes is validated too: its name, replicas, and that the selector
// selects the template's labels. A Job's template gets the job-name labels
// the API server adds.
func Workload(obj runtime.Object) (*model.Pod, error) {
	w, errs, err := readWorkload(obj)
	if err != nil {
		return nil, err
	}
	return w.convert(errs)
}

// RunsNoPods reports whether a workload says it runs none: replicas (Job,
// CronJob: parallelism) given as 0. It then stands for no pod.
func RunsNoPods(obj runtime.Object) bool {
	w, _, err := readWorkload(obj)
	return err == nil && w.replicas != nil && *w.replicas == 0
}

// readWorkload reads what Workload converts of obj, and the errors of the
// checks particular to its kind.
func readWorkload(obj runtime.Object) (workload, field.ErrorList, error) {
	spec := field.NewPath("spec")
	var (
		w    workload
		errs field.ErrorList
	)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if o == nil {
			return workload{}, nil, nilInput("Deployment")
		}
		w = workload{"Deployment", &o.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain, &o.Spec.Template, spec.Child("template"), o.Spec.Replicas, spec.Child("replicas"), 1}
		errs = appsSelector("deployment", o.Spec.Selector, &o.Spec.Template, spec)
	case *appsv1.ReplicaSet:
		if o == nil {
			return workload{}, nil, nilInput("ReplicaSet")
		}
		w = workload{"ReplicaSet", &o.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain, &o.Spec.Template, spec.Child("template"), o.Spec.Replicas, spec.Child("replicas"), 1}
		errs = appsSelector("replicaset", o.Spec.Selector, &o.Spec.Template, spec)
	case *appsv1.StatefulSet:
		if o == nil {
			return workload{}, nil, nilInput("StatefulSet")
		}
		w = workload{"StatefulSet", &o.ObjectMeta, apimachineryvalidation.NameIsDNSLabel, &o.Spec.Template, spec.Child("template"), o.Spec.Replicas, spec.Child("replicas"), 1}
		errs = appsSelector("statefulset", o.Spec.Selector, &o.Spec.Template, spec)
	case *appsv1.DaemonSet:
		if o == nil {
			return workload{}, nil, nilInput("DaemonSet")
		}
		w = workload{"DaemonSet", &o.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain, &o.Spec.Template, spec.Child("template"), nil, nil, 0}
		errs = appsSelector("daemonset", o.Spec.Selector, &o.Spec.Template, spec)
	case *batchv1.Job:
		if o == nil {
			return workload{}, nil, nilInput("Job")
		}
		w = workload{"Job", &o.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain, jobTemplate(&o.Spec, o.Name), spec.Child("template"), o.Spec.Parallelism, spec.Child("parallelism"), 1}
		if o.Spec.Selector != nil || isTrue(o.Spec.ManualSelector) {
			errs = requiredSelector("job", o.Spec.Selector, w.template.Labels, spec, false)
		}
	case *batchv1.CronJob:
		if o == nil {
			return workload{}, nil, nilInput("CronJob")
		}
		js := spec.Child("jobTemplate", "spec")
		w = workload{"CronJob", &o.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain, &o.Spec.JobTemplate.Spec.Template, js.Child("template"), o.Spec.JobTemplate.Spec.Parallelism, js.Child("parallelism"), 1}
		// The API server generates the jobs' selectors and job-name
		// labels (from names it makes up as it runs them).
		if o.Spec.JobTemplate.Spec.Selector != nil {
			errs = append(errs, field.Invalid(js.Child("selector"), o.Spec.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
		}
		if isTrue(o.Spec.JobTemplate.Spec.ManualSelector) {
			errs = append(errs, field.NotSupported(js.Child("manualSelector"), true, []string{"nil", "false"}))
		}
		if len(o.Name) > 52 { // the jobs' names add 11 characters
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), o.Name, "must be no more than 52 characters"))
		}
	case *corev1.ReplicationController:
		if o == nil {
			return workload{}, nil, nilInput("ReplicationController")
		}
		w = workload{"ReplicationController", &o.ObjectMeta, apimachineryvalidation.NameIsDNSSubdomain, o.Spec.Template, spec.Child("template"), o.Spec.Replicas, spec.Child("replicas"), 1}
		errs = rcSelector(o.Spec.Selector, o.Spec.Template, spec)
	default:
		return workload{}, nil, fmt.Errorf("apiconv: %T is not a workload", obj)
	}
	return w, errs, nil
}

// convert validates and converts the workload's metadata and template;
// errs holds the kind-specific errors found so far.
func (w *workload) convert(errs field.ErrorList) (*model.Pod, error) {
	ns := defaultNS(w.meta.Namespace)
	key := model.Key{Namespace: ns, Name: w.meta.Name}
	errs = append(validateMeta(w.meta.Name, ns, true, w.meta.Labels, w.nameFn), errs...)
	out := &model.Pod{
		Namespace: ns,
		Name:      w.meta.Name + "[" + w.kind + "]",
		Workload:  w.kind,
		Replicas:  w.def,
	}
	if w.rpath != nil && w.replicas != nil {
		out.Replicas = int(*w.replicas)
		if *w.replicas < 0 {
			errs = append(errs, field.Invalid(w.rpath, *w.replicas, "must be greater than or equal to 0"))
		}
	}
	if w.template == nil {
		errs = append(errs, field.Required(w.tpath, ""))
	} else {
		out.Labels = copyLabels(w.template.Labels)
		errs = append(errs, validateLabels(w.template.Labels, w.tpath.Child("metadata", "labels"))...)
		errs = append(errs, podSpec(out, &w.template.Spec, w.tpath.Child("spec"))...)
	}
	if err := objectErrors(w.kind, key, errs); err != nil {
		return nil, err
	}
	return out, nil
}

// jobTemplate returns a Job's pod template with the labels the API server
// adds to it, without changing the Job.
func jobTemplate(spec *batchv1.JobSpec, name string) *corev1.PodTemplateSpec {
	t := spec.Template
	if isTrue(spec.ManualSelector) {
		return &t
	}
	l := make(map[string]string, len(t.Labels)+2)
	for k, v := range t.Labels {
		l[k] = v
	}
	for _, k := range []string{legacyJobNameLabel, jobNameLabel} {
		if _, ok := l[k]; !ok {
			l[k] = name
		}
	}
	t.Labels = l
	return &t
}

func isTrue(b *bool) bool { return b != nil && *b }

// appsSelector checks an apps/v1 workload's spec.selector as the API
// server does: required, valid, not empty, and selecting the template's
// labels.
func appsSelector(what string, sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, spec *field.Path) field.ErrorList {
	return requiredSelector(what, sel, t.Labels, spec, true)
}

// requiredSelector checks that spec.selector is given and valid (and, if
// nonEmpty, not empty) and that it selects the template's labels.
func requiredSelector(what string, sel *metav1.LabelSelector, tlabels map[string]string, spec *field.Path, nonEmpty bool) field.ErrorList {
	path := spec.Child("selector")
	if sel == nil {
		return field.ErrorList{field.Required(path, "")}
	}
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, path)
	if nonEmpty && len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(path, sel, "empty selector is invalid for "+what))
	}
	if len(errs) > 0 {
		return errs
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return field.ErrorList{field.Invalid(path, sel, "invalid label selector")}
	}
	if !s.Matches(labels.Set(tlabels)) {
		errs = append(errs, field.Invalid(spec.Child("template", "metadata", "labels"), tlabels, "`selector` does not match template `labels`"))
	}
	return errs
}

// rcSelector checks a ReplicationController's selector, which defaults to
// the template's labels: it must then be non-empty, valid labels, and
// select the template's labels.
func rcSelector(sel map[string]string, t *corev1.PodTemplateSpec, spec *field.Path) field.ErrorList {
	if t == nil {
		return nil // convert reports the missing template
	}
	if len(sel) == 0 {
		sel = t.Labels
	}
	path := spec.Child("selector")
	if len(sel) == 0 {
		return field.ErrorList{field.Required(path, "")}
	}
	if errs := validateLabels(sel, path); len(errs) > 0 {
		return errs
	}
	if !labels.SelectorFromSet(sel).Matches(labels.Set(t.Labels)) {
		return field.ErrorList{field.Invalid(spec.Child("template", "metadata", "labels"), t.Labels, "`selector` does not match template `labels`")}
	}
	return nil
}
