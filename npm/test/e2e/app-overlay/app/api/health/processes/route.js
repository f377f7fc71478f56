// The README's example, as is.
import { healthRoute } from "ocwrap";

export const dynamic = "force-dynamic";
export const GET = healthRoute();
