import { PageHeader } from '../components/page';
import { Link } from '../router';

export function NotFoundPage() {
  return (
    <>
      <PageHeader title="Page not found" />
      <p>
        There is nothing here. <Link to="/">Go to your gitspaces.</Link>
      </p>
    </>
  );
}
