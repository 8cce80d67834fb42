package localstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
)

// tableAccept asks the apiserver for the server-side table kubectl get
// prints: the CRDs' additionalPrinterColumns, rendered by the server.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

// PrintTables writes `kubectl get <resources> -n namespace` output for
// twinsync resources (plural names, e.g. devicetwins): the apiserver renders
// the columns, as it does for kubectl.
func (s *Stack) PrintTables(ctx context.Context, w io.Writer, namespace string, resources ...string) error {
	httpClient, err := rest.HTTPClientFor(s.RESTConfig)
	if err != nil {
		return err
	}
	for i, resource := range resources {
		table, err := s.getTable(ctx, httpClient, namespace, resource)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeTable(w, table, singular(resource)+"."+iotv1alpha1.GroupVersion.Group)
	}
	return nil
}

func (s *Stack) getTable(ctx context.Context, httpClient *http.Client, namespace, resource string) (*metav1.Table, error) {
	url := fmt.Sprintf("%s/apis/%s/namespaces/%s/%s", strings.TrimSuffix(s.RESTConfig.Host, "/"),
		iotv1alpha1.GroupVersion.String(), namespace, resource)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", tableAccept)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list %s: %s", resource, resp.Status)
	}
	table := &metav1.Table{}
	if err := json.NewDecoder(resp.Body).Decode(table); err != nil {
		return nil, fmt.Errorf("list %s as a table: %w", resource, err)
	}
	return table, nil
}

// writeTable prints the default-priority columns the way kubectl does when
// it lists several kinds: names prefixed with the resource.
func writeTable(w io.Writer, table *metav1.Table, prefix string) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	defer tw.Flush()
	var cols []int
	var header []string
	for i, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			cols = append(cols, i)
			header = append(header, strings.ToUpper(c.Name))
		}
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range table.Rows {
		var cells []string
		for n, i := range cols {
			cell := ""
			if i < len(row.Cells) && row.Cells[i] != nil {
				cell = fmt.Sprint(row.Cells[i])
			}
			if n == 0 && strings.EqualFold(table.ColumnDefinitions[i].Name, "name") {
				cell = prefix + "/" + cell
			}
			if cell == "" {
				cell = "<none>"
			}
			cells = append(cells, cell)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
}

// singular turns the plural resource names of twinsync's kinds into the
// singular kubectl prefixes names with.
func singular(resource string) string {
	switch {
	case strings.HasSuffix(resource, "ies"):
		return strings.TrimSuffix(resource, "ies") + "y"
	default:
		return strings.TrimSuffix(resource, "s")
	}
}
