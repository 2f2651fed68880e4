// compose-check loads docker-compose.yml the way `docker compose config` does (compose-go, the library Docker
// Compose itself is built on: interpolation from an env file, merges, validation against the Compose schema) and
// then asserts the rules of a production deployment of Gitspaces. Each broken rule is printed as one line naming the
// service; the exit status is 1 when any rule is broken, 2 when the file cannot be loaded at all.
//
//	compose-check [-f docker-compose.yml] [--env-file .env] [--example] [--json]
//
// --example treats the env file as the committed example (.env.example): its secrets must be blank, and blanks are
// filled with placeholders so that the rest can be checked. --json prints the resolved services for tests.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// Secrets: each must come from the env file, with no default in docker-compose.yml and no value in the example.
var secrets = []string{
	"POSTGRES_PASSWORD",
	"GITSPACES_DB_PASSWORD",
	"TEMPORAL_DB_PASSWORD",
	"GITSPACES_PAYLOAD_KEYS",
	"GITSPACES_ADMIN_TOKEN",
	"GITSPACES_ACCESS_TOKEN_KEY",
	"GITSPACES_WORK_ORDER_KEY",
	"GITSPACES_WORK_ORDER_PUBLIC_KEY",
	"GITSPACES_RUNNER_KEYS",
	"GITSPACES_RUNNER_PUBLIC_KEYS",
	"GITSPACES_GATEWAY_ADMIN_TOKEN",
	"GITSPACES_CODEC_TOKEN",
}

// What each Gitspaces part must be given. Without them a part makes its own key in its data dir, which works for one
// process and silently breaks a second replica, a runner or the gateway.
var requiredEnv = map[string][]string{
	"api": {"TEMPORAL_ADDRESS", "DATABASE_URL", "GITSPACES_ADMIN_TOKEN", "GITSPACES_PAYLOAD_KEYS",
		"GITSPACES_ACCESS_TOKEN_KEY", "GITSPACES_WORK_ORDER_KEY", "GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS"},
	"runner": {"TEMPORAL_ADDRESS", "GITSPACES_RUNNER_KEYS", "GITSPACES_WORK_ORDER_PUBLIC_KEY", "GITSPACES_PAYLOAD_KEYS",
		"GITSPACES_GATEWAY_ADMIN_TOKEN"},
	"gateway": {"GITSPACES_GATEWAY_ADMIN_TOKEN", "GITSPACES_JWKS_URL"},
	"codec":   {"GITSPACES_CODEC_TOKEN", "GITSPACES_PAYLOAD_KEYS"},
}

// Values that every holder must share, and who holds them.
var sharedEnv = map[string][]string{
	"GITSPACES_PAYLOAD_KEYS":             {"api", "runner", "codec"},
	"GITSPACES_GATEWAY_ADMIN_TOKEN":      {"runner", "gateway"},
	"GITSPACES_ACCESS_TOKEN_KEY":         {"api"},
	"GITSPACES_WORK_ORDER_KEY":           {"api"},
	"GITSPACES_ADMIN_TOKEN":              {"api"},
	"GITSPACES_LOCAL_RUNNER_PUBLIC_KEYS": {"api"},
	"DATABASE_URL":                       {"api"},
}

// Services that may publish a port on the host's loopback only (an operator reaches them through a TLS proxy or a
// tunnel). The gateway, the developers' door, may publish on any address; nothing else may publish at all.
var loopbackOnly = map[string]bool{"ui": true, "codec": true, "api-proxy": true}

// Capabilities a Gitspaces service running as root (the runner of the local provider) may add back.
var rootCapabilities = map[string]bool{"CHOWN": true, "DAC_OVERRIDE": true, "FOWNER": true, "SETUID": true,
	"SETGID": true, "KILL": true}

const rootReasonKey = "x-gitspaces-root-reason"

type options struct {
	file    string
	envFile string
	example bool
	json    bool
}

func main() {
	var o options
	flag.StringVar(&o.file, "f", "docker-compose.yml", "the compose file")
	flag.StringVar(&o.envFile, "env-file", "", "the env file (default: none)")
	flag.BoolVar(&o.example, "example", false, "the env file is the committed example: secrets blank, blanks filled")
	flag.BoolVar(&o.json, "json", false, "print the resolved services as JSON after the checks")
	flag.Parse()

	env, problems, err := readEnv(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %v\n", err)
		os.Exit(2)
	}
	project, err := load(o.file, env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compose-check: %s does not load: %v\n", o.file, err)
		os.Exit(2)
	}
	problems = append(problems, checkSecretsRequired(o.file, env)...)
	problems = append(problems, check(project)...)

	if o.json {
		out, _ := json.MarshalIndent(summarize(project), "", "  ")
		fmt.Println(string(out))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "compose-check: %s\n", p)
		}
		fmt.Fprintf(os.Stderr, "compose-check: %d rule(s) broken in %s\n", len(problems), o.file)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "compose-check: %s: %d services, every rule holds\n", o.file, len(project.Services))
}

// readEnv reads the env file as Compose does; for the example, every secret must be blank there and every blank is
// given a placeholder.
func readEnv(o options) (map[string]string, []string, error) {
	env := map[string]string{}
	var problems []string
	if o.envFile == "" {
		return env, nil, nil
	}
	read, err := dotenv.GetEnvFromFile(map[string]string{}, []string{o.envFile})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", o.envFile, err)
	}
	for k, v := range read {
		env[k] = v
	}
	if o.example {
		for _, name := range secrets {
			value, listed := env[name]
			if !listed {
				problems = append(problems, fmt.Sprintf("%s does not list the secret %s (with how to make one)", o.envFile, name))
			} else if value != "" {
				problems = append(problems, fmt.Sprintf("%s gives the secret %s a value: an example must leave it blank", o.envFile, name))
			}
		}
		for k, v := range env {
			if v == "" {
				env[k] = "placeholder-" + k
			}
		}
	}
	return env, problems, nil
}

func load(file string, env map[string]string) (*types.Project, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv(list),
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// checkSecretsRequired: without each secret the file must not load (a `${NAME:?…}` reference, never a default).
func checkSecretsRequired(file string, env map[string]string) []string {
	var problems []string
	for _, name := range secrets {
		without := map[string]string{}
		for k, v := range env {
			if k != name {
				without[k] = v
			}
		}
		_, err := load(file, without)
		if err == nil {
			problems = append(problems, fmt.Sprintf("the secret %s is not required: the stack loads without it (use ${%s:?…}, never a default)", name, name))
		} else if !strings.Contains(err.Error(), name) {
			problems = append(problems, fmt.Sprintf("without the secret %s the file fails for another reason: %v", name, err))
		}
	}
	return problems
}

// role says what a service is, from its image or the part its command runs.
func role(s types.ServiceConfig) string {
	command := strings.Join(s.Command, " ")
	if s.Build != nil {
		for part, main := range map[string]string{"api": "dist/api/main.js", "runner": "dist/workers/runner-main.js",
			"gateway": "dist/gateway/main.js", "codec": "dist/codec/main.js"} {
			if strings.Contains(command, main) {
				return part
			}
		}
		return "gitspaces-other"
	}
	name := imageName(s.Image)
	switch {
	case name == "temporalio/server":
		return "temporal"
	case name == "temporalio/admin-tools":
		return "temporal-job"
	case name == "temporalio/ui":
		return "ui"
	case name == "postgres":
		return "postgres"
	case name == "nginx" || strings.HasSuffix(name, "/nginx") || strings.Contains(name, "nginx-unprivileged"):
		return "api-proxy"
	}
	return "other"
}

func imageName(image string) string {
	name := image
	if at := strings.Index(name, "@"); at >= 0 {
		name = name[:at]
	}
	if colon := strings.LastIndex(name, ":"); colon > strings.LastIndex(name, "/") {
		name = name[:colon]
	}
	return strings.TrimPrefix(strings.TrimPrefix(name, "docker.io/"), "library/")
}

func imageTag(image string) string {
	if at := strings.Index(image, "@"); at >= 0 {
		return image[at:]
	}
	if colon := strings.LastIndex(image, ":"); colon > strings.LastIndex(image, "/") {
		return image[colon+1:]
	}
	return ""
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// jobs are the services others wait for to complete: they run once and stop.
func jobs(p *types.Project) map[string]bool {
	out := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				out[dep] = true
			}
		}
	}
	return out
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func check(p *types.Project) []string {
	var problems []string
	add := func(service, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("service %s: %s", service, fmt.Sprintf(format, args...)))
	}
	isJob := jobs(p)
	byRole := map[string][]string{}
	for _, name := range sortedNames(p.Services) {
		byRole[role(p.Services[name])] = append(byRole[role(p.Services[name])], name)
	}

	for _, name := range sortedNames(p.Services) {
		s := p.Services[name]
		r := role(s)

		// Images: pinned, and Temporal's current images (auto-setup is no longer built).
		if s.Build == nil {
			tag := imageTag(s.Image)
			if tag == "" || tag == "latest" {
				add(name, "image %q is not pinned to a version", s.Image)
			}
			if strings.Contains(imageName(s.Image), "auto-setup") {
				add(name, "image %q: temporalio/auto-setup is no longer built; use temporalio/server with a schema job", s.Image)
			}
		}

		// Ports: only the gateway is published; the UI, the codec server and the API's proxy on loopback only.
		if s.NetworkMode == "host" {
			add(name, "network_mode host publishes every port it listens on")
		}
		for _, port := range s.Ports {
			where := fmt.Sprintf("%s:%s->%d", port.HostIP, port.Published, port.Target)
			switch {
			case r == "gateway":
			case loopbackOnly[r]:
				if port.HostIP != "127.0.0.1" && port.HostIP != "::1" {
					add(name, "publishes %s on every interface; bind it to 127.0.0.1", where)
				}
			default:
				add(name, "publishes port %s: only the gateway (and the UI, the codec server and the API on 127.0.0.1) may be published", where)
			}
		}

		// Restart policies and health checks.
		if isJob[name] {
			if s.Restart != "no" && s.Restart != "" && !strings.HasPrefix(s.Restart, "on-failure") {
				add(name, "is a job (others wait for it to complete) but restart is %q: use on-failure", s.Restart)
			}
		} else {
			if s.Restart != types.RestartPolicyUnlessStopped && s.Restart != types.RestartPolicyAlways {
				add(name, "has no restart policy (restart: %q); use unless-stopped", s.Restart)
			}
			if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 ||
				s.HealthCheck.Test[0] == "NONE" {
				add(name, "has no health check")
			}
		}
		for dep, d := range s.DependsOn {
			if other, ok := p.Services[dep]; ok && d.Condition == types.ServiceConditionHealthy &&
				(other.HealthCheck == nil || other.HealthCheck.Disable) {
				add(name, "waits for %s to be healthy, which has no health check", dep)
			}
		}

		// Users and privileges.
		if s.Privileged {
			add(name, "is privileged")
		}
		for _, v := range s.Volumes {
			if strings.HasSuffix(v.Source, "docker.sock") {
				add(name, "mounts the Docker socket (%s): root on the host", v.Source)
			}
		}
		if s.Build != nil {
			problems = append(problems, checkGitspacesService(name, s)...)
		}

		// Required settings of each Gitspaces part.
		for _, key := range requiredEnv[r] {
			if env(s, key) == "" {
				add(name, "(%s) is not given %s: it would make a key of its own instead of sharing one", r, key)
			}
		}
	}

	// Temporal: the server on its current image, after a schema job; a namespace job and a search-attributes job.
	if len(byRole["temporal"]) == 0 {
		problems = append(problems, "no temporalio/server service")
	}
	for _, name := range byRole["temporal"] {
		schemaJob := false
		for dep, d := range p.Services[name].DependsOn {
			if role(p.Services[dep]) == "temporal-job" && d.Condition == types.ServiceConditionCompletedSuccessfully {
				schemaJob = true
			}
		}
		if !schemaJob {
			add(name, "does not wait for a schema job (temporalio/admin-tools, completed successfully)")
		}
		// The image's entrypoint broadcasts the container's addresses, one per network, as one value: on more than one
		// network the server's configuration does not load (found by scripts/compose-smoke.sh on a real engine).
		if s := p.Services[name]; len(s.Networks) > 1 && env(s, "TEMPORAL_BROADCAST_ADDRESS") == "" {
			add(name, "is on %d networks but TEMPORAL_BROADCAST_ADDRESS is not set: its configuration would not load", len(s.Networks))
		}
	}
	if len(byRole["temporal-job"]) < 3 {
		problems = append(problems, fmt.Sprintf("%d temporalio/admin-tools jobs; want the schema, namespace and search-attributes jobs", len(byRole["temporal-job"])))
	}

	// The API: two replicas or more, with the same keys, behind one proxy that names every replica.
	replicas := 0
	for _, name := range byRole["api"] {
		s := p.Services[name]
		switch {
		case s.Deploy != nil && s.Deploy.Replicas != nil:
			replicas += *s.Deploy.Replicas
		case s.Scale != nil:
			replicas += *s.Scale
		default:
			replicas++
		}
	}
	if replicas < 2 {
		problems = append(problems, fmt.Sprintf("the API runs %d replica(s) (%s); want 2 or more behind one proxy", replicas, strings.Join(byRole["api"], ", ")))
	}
	if len(byRole["api-proxy"]) != 1 {
		problems = append(problems, fmt.Sprintf("want one proxy in front of the API replicas, found %d", len(byRole["api-proxy"])))
	}
	for _, name := range byRole["api-proxy"] {
		problems = append(problems, checkProxy(name, p.Services[name], byRole["api"])...)
	}
	problems = append(problems, checkTrustedProxies(p, byRole["api"], byRole["api-proxy"])...)
	for key, holders := range sharedEnv {
		values := map[string][]string{}
		for _, r := range holders {
			for _, name := range byRole[r] {
				values[env(p.Services[name], key)] = append(values[env(p.Services[name], key)], name)
			}
		}
		if len(values) > 1 {
			var groups []string
			for _, names := range values {
				groups = append(groups, strings.Join(names, "+"))
			}
			sort.Strings(groups)
			problems = append(problems, fmt.Sprintf("%s differs between %s: they must share one value", key, strings.Join(groups, " and ")))
		}
	}

	// Gitspaces of the local provider live in the gateway's network namespace: never on the database's networks.
	for _, gateway := range byRole["gateway"] {
		for _, db := range byRole["postgres"] {
			for network := range p.Services[db].Networks {
				if _, shared := p.Services[gateway].Networks[network]; shared {
					add(gateway, "shares network %q with %s: the runner's gitspaces could reach the database", network, db)
				}
			}
		}
	}
	return problems
}

// checkTrustedProxies: behind the proxy every client has the proxy's address, so the replicas must believe its
// X-Forwarded-For (or one guesser locks everyone out), and only its: the subnet they trust must be a network that
// nobody but the proxy and the replicas is on (a gitspace on a shared network could otherwise name any address).
func checkTrustedProxies(p *types.Project, apis, proxies []string) []string {
	var problems []string
	members := map[string]bool{}
	for _, name := range append(append([]string{}, apis...), proxies...) {
		members[name] = true
	}
	for _, api := range apis {
		trusted := env(p.Services[api], "GITSPACES_API_TRUSTED_PROXIES")
		if trusted == "" {
			problems = append(problems, fmt.Sprintf("service %s: GITSPACES_API_TRUSTED_PROXIES is not set: behind the proxy every client shares its address, and one client guessing tokens locks out all", api))
			continue
		}
		found := false
		for _, networkName := range sortedNames(p.Networks) {
			if !hasSubnet(p.Networks[networkName], trusted) {
				continue
			}
			found = true
			for _, name := range sortedNames(p.Services) {
				if _, on := p.Services[name].Networks[networkName]; on && !members[name] {
					problems = append(problems, fmt.Sprintf("service %s: trusts X-Forwarded-For from network %q, which %s is on too: only the API proxy and replicas may be", api, networkName, name))
				}
			}
		}
		if !found {
			problems = append(problems, fmt.Sprintf("service %s: trusts X-Forwarded-For from %s, which is not the subnet of a network of the API proxy and replicas only", api, trusted))
		}
	}
	return problems
}

func hasSubnet(network types.NetworkConfig, subnet string) bool {
	for _, pool := range network.Ipam.Config {
		if pool != nil && pool.Subnet == subnet {
			return true
		}
	}
	return false
}

// checkGitspacesService: a service of our own image runs as the image's non-root user, with no capabilities; the one
// exception (the local provider's runner) says why, and adds back only what it needs.
func checkGitspacesService(name string, s types.ServiceConfig) []string {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("service %s: %s", name, fmt.Sprintf(format, args...)))
	}
	user := s.User
	if user == "" {
		imageUser, err := dockerfileUser(s.Build)
		if err != nil {
			add("%v", err)
		}
		user = imageUser
	}
	if isRoot(user) {
		reason, _ := s.Extensions[rootReasonKey].(string)
		if reason == "" {
			add("runs as root (user %q) with no %s saying why", user, rootReasonKey)
		}
		for _, c := range s.CapAdd {
			if !rootCapabilities[strings.TrimPrefix(strings.ToUpper(c), "CAP_")] {
				add("runs as root and adds capability %s, beyond what the local provider needs", c)
			}
		}
	} else if len(s.CapAdd) > 0 {
		add("adds capabilities %v", s.CapAdd)
	}
	dropsAll := false
	for _, c := range s.CapDrop {
		if strings.EqualFold(c, "ALL") {
			dropsAll = true
		}
	}
	if !dropsAll {
		add("does not drop every capability (cap_drop: [ALL])")
	}
	noNewPrivileges := false
	for _, o := range s.SecurityOpt {
		if o == "no-new-privileges:true" || o == "no-new-privileges" {
			noNewPrivileges = true
		}
	}
	if !noNewPrivileges {
		add("allows new privileges (security_opt: [no-new-privileges:true])")
	}
	return problems
}

func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "0" || u == "root"
}

// dockerfileUser is the USER in effect at the end of the build's target stage ("" when there is none: root).
func dockerfileUser(b *types.BuildConfig) (string, error) {
	file := b.Dockerfile
	if file == "" {
		file = "Dockerfile"
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(b.Context, file)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("cannot read the image's Dockerfile: %w", err)
	}
	defer f.Close()
	type stage struct{ name, user string }
	var stages []stage
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			st := stage{}
			if len(fields) >= 4 && strings.EqualFold(fields[2], "AS") {
				st.name = fields[3]
			}
			stages = append(stages, st)
		case "USER":
			if len(stages) > 0 {
				stages[len(stages)-1].user = fields[1]
			}
		}
	}
	if len(stages) == 0 {
		return "", errors.New("the image's Dockerfile has no FROM")
	}
	final := stages[len(stages)-1]
	if b.Target != "" {
		for _, st := range stages {
			if st.name == b.Target {
				final = st
			}
		}
	}
	return final.user, nil
}

var upstreamServer = regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9_.-]+):(\d+)`)

// checkProxy: the proxy's configuration (a file mounted from the project) names every API replica, and nothing else.
func checkProxy(name string, s types.ServiceConfig, apis []string) []string {
	var conf string
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasPrefix(v.Target, "/etc/nginx/") {
			data, err := os.ReadFile(v.Source)
			if err != nil {
				return []string{fmt.Sprintf("service %s: cannot read its configuration %s: %v", name, v.Source, err)}
			}
			conf += string(data)
		}
	}
	if conf == "" {
		return []string{fmt.Sprintf("service %s: no configuration mounted under /etc/nginx/ to check", name)}
	}
	named := map[string]bool{}
	var problems []string
	for _, m := range upstreamServer.FindAllStringSubmatch(conf, -1) {
		named[m[1]] = true
		if !contains(apis, m[1]) {
			problems = append(problems, fmt.Sprintf("service %s: sends API requests to %s, which is not an API replica", name, m[1]))
		}
	}
	for _, api := range apis {
		if !named[api] {
			problems = append(problems, fmt.Sprintf("service %s: does not send requests to the API replica %s", name, api))
		}
	}
	return problems
}

func contains(list []string, item string) bool {
	for _, x := range list {
		if x == item {
			return true
		}
	}
	return false
}

type serviceSummary struct {
	Role        string            `json:"role"`
	Image       string            `json:"image"`
	User        string            `json:"user"`
	Restart     string            `json:"restart"`
	Healthcheck []string          `json:"healthcheck"`
	Ports       []string          `json:"ports"`
	Networks    []string          `json:"networks"`
	NetworkMode string            `json:"network_mode"`
	Environment map[string]string `json:"environment"`
}

func summarize(p *types.Project) map[string]any {
	services := map[string]serviceSummary{}
	for name, s := range p.Services {
		sum := serviceSummary{Role: role(s), Image: s.Image, User: s.User, Restart: s.Restart, NetworkMode: s.NetworkMode,
			Environment: map[string]string{}, Ports: []string{}, Networks: []string{}}
		if s.HealthCheck != nil {
			sum.Healthcheck = s.HealthCheck.Test
		}
		for _, port := range s.Ports {
			sum.Ports = append(sum.Ports, fmt.Sprintf("%s:%s->%d", port.HostIP, port.Published, port.Target))
		}
		for network := range s.Networks {
			sum.Networks = append(sum.Networks, network)
		}
		sort.Strings(sum.Networks)
		for k := range s.Environment {
			sum.Environment[k] = env(s, k)
		}
		services[name] = sum
	}
	return map[string]any{"name": p.Name, "services": services}
}
